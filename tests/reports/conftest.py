"""Reports: a real failover in the lab with a real worker (the engine's fixtures), and
runs written like the engine writes them (tests.board.runs) for the fast tests."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader

from tests.engine.conftest import declare, estate, lab, lose_wsl, wait_for_run, worker  # noqa: F401


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pdf_text(data: bytes) -> str:
    """The PDF's text with white space collapsed (table cells wrap lines anywhere)."""
    reader = PdfReader(io.BytesIO(data))
    return re.sub(r"\s+", " ", " ".join(page.extract_text() or "" for page in reader.pages))


def squash(html: str) -> str:
    return re.sub(r"\s+", " ", html)

"""End to end: Debian's Chromium (driven by Playwright, no downloaded browser) against
uvicorn serving the app, a real Celery worker and the lab (tests/engine's fixtures)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from hosts.lab.keys import client_key_path
from tests.board.live import REPO, Uvicorn
from tests.engine.conftest import WORKER_ENV, database_url, estate, lab, worker  # noqa: F401 (fixtures)

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser(transactional_db, monkeypatch):
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API keeps an event loop running in this thread; the test's own
    # ORM calls are still plain synchronous ones. Only for these tests.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
        # While Playwright's loop runs, Django keeps this thread's connections in a context
        # variable, apart from the thread's own: close them, or the test database cannot
        # be dropped at the end.
        connections.close_all()


@pytest.fixture
def web(lab, estate, tmp_path: Path) -> Iterator[Uvicorn]:  # noqa: F811 (the imported fixtures)
    """The web app on the tests' database and Redis, talking to the lab like the worker."""
    server = Uvicorn(
        {
            **WORKER_ENV,
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "DRPORTAL_LAB_DIR": str(lab.lab_dir),
            "DRPORTAL_SSH_KEY": str(client_key_path(lab.lab_dir)),
            "DEBUG": "1",
        },
        tmp_path,
    ).start()
    yield server
    server.stop()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS

"""The PDF report as a person sees it (issue 17 item 12): rendered to images with
poppler's pdftoppm, every page's right margin is blank (no table runs off the page), the
functional-test counts stay on one line (pdftotext -layout), and a finished run's PDF is
rendered once and then served from the cache until its report changes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.urls import reverse
from PIL import Image

from failover.choices import RunStateChoices
from failover.reports import pdf as report_pdf_module

from .conftest import declare, lose_wsl, wait_for_run

# 72 dpi: one pixel is a point; A4 is 595 x 842. The page's right margin is 14 mm (40 pt):
# nothing may be drawn in the rightmost 30 points of any page.
DPI = 72
RIGHT_MARGIN_PX = 30
INK = 200  # a pixel darker than this (0-255 grey) is ink


def needs(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is missing: apt-get install -y poppler-utils (scripts/ensure-services)")
    return path


def pages_as_images(pdf: bytes, tmp_path: Path) -> list[Image.Image]:
    source = tmp_path / "report.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        [needs("pdftoppm"), "-r", str(DPI), "-gray", "-png", str(source), str(tmp_path / "page")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    files = sorted(tmp_path.glob("page-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    assert files, "pdftoppm made no page"
    return [Image.open(f).convert("L") for f in files]


def ink_in_right_margin(image: Image.Image) -> list[tuple[int, int]]:
    """(x, y) of the ink in the rightmost RIGHT_MARGIN_PX columns."""
    width, height = image.size
    strip = image.crop((width - RIGHT_MARGIN_PX, 0, width, height))
    pixels = strip.load()
    return [
        (width - RIGHT_MARGIN_PX + x, y)
        for x in range(strip.width)
        for y in range(strip.height)
        if pixels[x, y] < INK
    ]


def layout_text(pdf: bytes, tmp_path: Path) -> str:
    source = tmp_path / "layout.pdf"
    source.write_bytes(pdf)
    done = subprocess.run(
        [needs("pdftotext"), "-layout", str(source), "-"], check=True, capture_output=True, text=True
    )
    return done.stdout


def test_the_ink_check_sees_a_table_that_runs_off_the_page(tmp_path):
    """The check itself: a PDF whose table is wider than the page has ink in the margin."""
    from weasyprint import HTML

    wide = "<table style='width: 260mm'><tr>" + "<td>cut off cell</td>" * 12 + "</tr></table>"
    pdf = HTML(string=f"<html><body>{wide}</body></html>").write_pdf(
        stylesheets=[], presentational_hints=True
    )
    assert any(ink_in_right_margin(image) for image in pages_as_images(pdf, tmp_path))


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_pdf_of_a_real_failover_fits_the_page_and_keeps_the_counts_on_one_line(
    lab, estate, worker, client, tmp_path
):
    lab.fault("proxy-xen01", "service-down", "3128")  # a "down" among the counts
    lose_wsl(lab)
    run = wait_for_run(declare(estate["mod"]).run.pk, worker=worker, timeout=120)
    assert run.state == RunStateChoices.SUCCEEDED
    client.force_login(estate["helpdesk"])
    pdf = client.get(reverse("reports:run-pdf", args=[run.pk])).content

    images = pages_as_images(pdf, tmp_path)
    assert len(images) >= 2
    for number, image in enumerate(images, start=1):
        ink = ink_in_right_margin(image)
        assert not ink, f"page {number}: ink in the right margin, e.g. at {ink[:5]}"

    text = layout_text(pdf, tmp_path)
    # Every column of the timeline is on the page: its header reads to the end.
    header = next(line for line in text.splitlines() if re.search(r"#\s+Step\s+State", line))
    assert re.search(r"Planned\s+Actual\s+Difference\s+Started\s+Finished", header), header
    # The counts of the functional tests: one line, all three.
    counts = [line for line in text.splitlines() if re.search(r"\bok\s+\d+\s+·", line)]
    assert counts, "no line with the functional-test counts"
    assert re.search(r"ok\s+\d+\s+·\s+\S*\s*down\s+1\s+·\s+\S*\s*note\s+\d+", counts[0]), counts[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_finished_run_s_pdf_is_rendered_once_until_its_report_changes(
    lab, estate, worker, client, monkeypatch
):
    lose_wsl(lab)
    run = wait_for_run(declare(estate["mod"]).run.pk, worker=worker, timeout=120)
    client.force_login(estate["helpdesk"])
    renders = []
    real = report_pdf_module.render_pdf
    monkeypatch.setattr(report_pdf_module, "render_pdf", lambda html: renders.append(1) or real(html))
    url = reverse("reports:run-pdf", args=[run.pk])

    first = client.get(url).content
    second = client.get(url).content
    assert len(renders) == 1, "the second request rendered the PDF again"
    assert second == first and first.startswith(b"%PDF")

    run.disaster.notes = "Generator 2 failed at 03:12; facilities informed."
    run.disaster.save(update_fields=["notes"])
    third = client.get(url).content
    assert len(renders) == 2, "a changed report was served from the cache"
    assert third != first
    client.get(url)
    assert len(renders) == 2


@pytest.mark.django_db
def test_a_run_still_going_is_rendered_anew_on_every_request(users, client, monkeypatch):
    from tests.board.runs import build_run

    run = build_run(user=users["mod"], per_step=1, checks=1)
    assert run.finished_at is None
    renders = []
    real = report_pdf_module.render_pdf
    monkeypatch.setattr(report_pdf_module, "render_pdf", lambda html: renders.append(1) or real(html))
    client.force_login(users["helpdesk"])
    url = reverse("reports:run-pdf", args=[run.pk])
    assert client.get(url).content.startswith(b"%PDF")
    client.get(url)
    assert len(renders) == 2, "the PDF of an unfinished run came from the cache"

"""The house's contract, as a spec: imports point one way (views, API and tasks ->
readiness -> runs -> engine -> actions -> hosts.drivers; models, choices and events
below everything), hosts knows nothing of failover, the drivers and the lab nothing of
Django, and no module imports in a circle. The contract itself is pyproject.toml's
[tool.importlinter]; `make test` runs lint-imports too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_imports_point_one_way_and_nothing_imports_in_a_circle():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout

"""scripts/security-scan: bandit with the project's settings catches what it should, and
pip-audit's answer is read right: a vulnerability fails, an audit that could not run is
reported as skipped (never as passed)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .compose import REPO

BIN = Path(sys.executable).parent


def load_scan():
    loader = importlib.machinery.SourceFileLoader("security_scan", str(REPO / "scripts" / "security-scan"))
    spec = importlib.util.spec_from_loader("security_scan", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


scan = load_scan()


def report(*dependencies: dict) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def test_a_known_vulnerability_fails_the_audit():
    verdict, message = scan.judge_audit(
        1,
        report(
            {
                "name": "django",
                "version": "5.2.0",
                "vulns": [{"id": "PYSEC-2025-1", "fix_versions": ["5.2.1"]}],
            },
            {"name": "redis", "version": "8.1.0", "vulns": []},
        ),
        "",
        "pypi",
    )
    assert verdict == "vulnerable"
    assert "django 5.2.0: PYSEC-2025-1 (fixed in 5.2.1)" in message


def test_an_audit_that_knew_no_pin_is_skipped_not_passed():
    skipped = {
        "name": "amqp",
        "skip_reason": "Dependency not found on PyPI and could not be audited: amqp (5.4.2)",
    }
    verdict, message = scan.judge_audit(0, report(skipped), "", "pypi")
    assert verdict == "skipped"
    assert "knew none of the 1 pinned packages" in message and "nothing was audited" in message


def test_an_audit_of_some_pins_passes_and_names_the_others():
    verdict, message = scan.judge_audit(
        0,
        report(
            {"name": "django", "version": "5.2.19", "vulns": []}, {"name": "local", "skip_reason": "editable"}
        ),
        "",
        "pypi",
    )
    assert verdict == "ok"
    assert message == "pypi: 1 pinned packages audited, no known vulnerabilities; not audited: local"


def test_an_unreachable_service_is_skipped_and_any_other_failure_is_an_error():
    offline = "requests.exceptions.ConnectionError: Max retries exceeded (NameResolutionError)"
    assert scan.judge_audit(1, "", offline, "osv")[0] == "skipped"
    verdict, message = scan.judge_audit(1, "", "pip_audit: error: invalid requirement 'x=='", "osv")
    assert verdict == "error" and "invalid requirement" in message


@pytest.mark.parametrize(
    ("code", "finding"),
    [
        ("import subprocess\nsubprocess.call('ls ' + name, shell=True)\n", "B602"),
        ("import pickle\nobj = pickle.loads(data)\n", "B301"),
        ("import yaml\nobj = yaml.load(text)\n", "B506"),
    ],
)
def test_bandit_with_the_projects_settings_reports_real_findings(tmp_path, code, finding):
    (tmp_path / "drportal").mkdir()
    (tmp_path / "drportal" / "bad.py").write_text(code, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    result = subprocess.run(
        [str(BIN / "bandit"), "-c", "pyproject.toml", "-q", "-r", "drportal"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert finding in result.stdout

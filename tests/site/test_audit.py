"""`make audit` (.ci/audit.py): fails on a known vulnerability, says so and passes when no
vulnerability service could audit anything (unless AUDIT_REQUIRED=1). Decided on pip-audit's JSON
report format; the live run depends on the network and is exercised by CI's `make audit` step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

VULNERABLE = {
    "dependencies": [
        {"name": "django", "version": "3.2.0", "vulns": [{"id": "PYSEC-2021-98", "fix_versions": ["3.2.2"]}]},
        {"name": "whitenoise", "version": "6.12.0", "vulns": []},
    ],
    "fixes": [],
}
CLEAN = {"dependencies": [{"name": "django", "version": "5.2.19", "vulns": []}], "fixes": []}
UNREACHABLE = {
    "dependencies": [
        {"name": "django", "skip_reason": "Dependency not found on PyPI and could not be audited: django (5.2.19)"}
    ],
    "fixes": [],
}


def decide(report, tmp_path, required=False):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    env = {"PATH": "/usr/bin:/bin", **({"AUDIT_REQUIRED": "1"} if required else {})}
    return subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "audit.py"), "--from-json", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )


def test_a_known_vulnerability_fails(tmp_path):
    result = decide(VULNERABLE, tmp_path)
    assert result.returncode == 1
    assert "django 3.2.0: PYSEC-2021-98 (fixed in 3.2.2)" in result.stdout


def test_a_clean_audit_passes(tmp_path):
    result = decide(CLEAN, tmp_path)
    assert result.returncode == 0
    assert "1 packages audited, no known vulnerabilities" in result.stdout


@pytest.mark.parametrize(("required", "code"), [(False, 0), (True, 2)])
def test_an_audit_that_could_not_run_is_reported(tmp_path, required, code):
    result = decide(UNREACHABLE, tmp_path, required)
    assert result.returncode == code
    assert "AUDIT NOT RUN" in result.stdout

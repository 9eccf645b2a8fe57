#!/usr/bin/env python3
"""Dependency audit (pip-audit) of the installed environment: the packages of requirements.txt and
requirements-dev.txt with everything they pull in.

Exit 1 on any known vulnerability. When no vulnerability service can be reached (no network to
PyPI's JSON API or OSV, or a mirror that does not serve per-version data, so pip-audit can audit
nothing), say so loudly and exit 0, unless AUDIT_REQUIRED=1 (then 2).

    python .ci/audit.py                   # run pip-audit, decide
    python .ci/audit.py --from-json FILE  # decide on a saved `pip-audit -f json` report (tests)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SERVICE = os.environ.get("AUDIT_SERVICE", "pypi")  # pip-audit's --vulnerability-service: pypi or osv


def run_pip_audit() -> tuple[dict | None, str]:
    pip_audit = Path(sys.executable).with_name("pip-audit")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        proc = subprocess.run(  # noqa: S603 - our own pip-audit, fixed arguments
            [str(pip_audit), "--progress-spinner", "off", "--vulnerability-service", SERVICE, "-f", "json",
             "-o", str(report), "--timeout", "20"],
            capture_output=True,
            text=True,
        )  # fmt: skip
        text = report.read_text() if report.exists() else ""
    if not text.strip():
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return None, lines[-1] if lines else f"pip-audit exited {proc.returncode} without a report"
    return json.loads(text), ""


def decide(report: dict | None, error: str = "") -> int:
    required = os.environ.get("AUDIT_REQUIRED") == "1"
    if report is None:
        print(f"AUDIT NOT RUN: pip-audit could not reach its vulnerability service ({error}).")
        return 2 if required else 0
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    audited = [d for d in dependencies if "skip_reason" not in d]
    if vulnerable:
        print(f"KNOWN VULNERABILITIES in {len(vulnerable)} package(s):")
        for dep in vulnerable:
            for vuln in dep["vulns"]:
                fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
                print(f"  {dep['name']} {dep.get('version', '?')}: {vuln['id']} (fixed in {fixes})")
        return 1
    if dependencies and not audited:
        print(
            f"AUDIT NOT RUN: the vulnerability service knew none of the {len(dependencies)} installed packages "
            f"(e.g. {dependencies[0].get('skip_reason', '')!r}); no network to it from here?"
        )
        return 2 if required else 0
    skipped = len(dependencies) - len(audited)
    print(f"pip-audit: {len(audited)} packages audited, no known vulnerabilities ({skipped} skipped).")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--from-json":
        return decide(json.loads(Path(argv[1]).read_text()))
    return decide(*run_pip_audit())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

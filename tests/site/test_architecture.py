"""The package layout is enforced: imports go one way, no cycles, no import hidden in a function."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("events", "dashboard", "postbacks_site")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )


def product_copy(tmp_path: Path) -> Path:
    for name in PRODUCT:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # The models importing the lifecycle: an upward import.
        ("events/models/actions.py", "from events.lifecycle import rules", "Capabilities import one way"),
        # The rules importing the module that applies them, which imports the rules: a cycle.
        ("events/lifecycle/rules.py", "from . import apply", "No import cycle"),
        # events' app config (in no layer) importing the dashboard.
        ("events/apps.py", "import dashboard.money", "Nothing in events imports the dashboard"),
    ],
)
def test_an_upward_import_or_a_cycle_breaks_the_contracts(tmp_path, module, line, broken):
    copy = product_copy(tmp_path)
    path = copy / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(copy)
    assert result.returncode == 1
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout


def test_no_product_module_imports_inside_a_function():
    hidden = []
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    hidden += [
                        f"{path.relative_to(ROOT)}:{sub.lineno}"
                        for sub in ast.walk(node)
                        if isinstance(sub, ast.Import | ast.ImportFrom)
                    ]
    assert hidden == []


def test_each_dashboard_module_says_what_it_owns_and_none_grows_too_long():
    """A docstring first; at most 600 lines a module and 60 a function."""
    found = []
    for path in (ROOT / "dashboard").rglob("*.py"):
        source = path.read_text()
        tree = ast.parse(source)
        name = path.relative_to(ROOT)
        if not ast.get_docstring(tree):
            found.append(f"{name}: no docstring")
        if len(source.splitlines()) > 600:
            found.append(f"{name}: {len(source.splitlines())} lines")
        found += [
            f"{name}:{node.lineno} {node.name}(): {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 60
        ]
    assert found == []

"""The layering and size rules of the code base, read from the source (no imports run).

- `budget` (the core) imports neither `serve` nor `train_fusion`; those two siblings never
  import each other; no product package imports the CLI layer (`thinkbudget.cli`,
  `thinkbudget.launch`) or test and bench support (`harness`, `tests`, `bench`). Imports
  inside functions count too.
- No function over 60 lines and no file over 350 lines, in the product and its support.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = {
    "budget": "thinkbudget.budget",
    "serve": "thinkbudget.serve",
    "train_fusion": "thinkbudget.train_fusion",
    "thinkbudget": "thinkbudget",
}
FORBIDDEN = {
    "budget": (
        "thinkbudget.serve",
        "thinkbudget.train_fusion",
        "thinkbudget.cli",
        "thinkbudget.launch",
        "harness",
        "tests",
        "bench",
    ),
    "serve": (
        "thinkbudget.train_fusion",
        "thinkbudget.cli",
        "thinkbudget.launch",
        "harness",
        "tests",
        "bench",
    ),
    "train_fusion": (
        "thinkbudget.serve",
        "thinkbudget.cli",
        "thinkbudget.launch",
        "harness",
        "tests",
        "bench",
    ),
    "thinkbudget": ("harness", "tests", "bench"),
}
CHECKED = ["budget", "serve", "train_fusion", "thinkbudget", "harness", "bench", "tests"]


def python_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def violations(folder: str) -> list[str]:
    bad = []
    for path in python_files(folder):
        for module in imported_modules(path):
            if module.split(".")[0] in ("budget", "serve", "train_fusion"):
                bad.append(f"{path.relative_to(ROOT)} imports {module} outside the namespace")
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN[folder]):
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    return bad


@pytest.mark.parametrize("folder", sorted(PRODUCT))
def test_import_graph_keeps_the_layers(folder):
    assert python_files(folder), f"no sources under {folder}/"
    assert violations(folder) == []


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    """The rule is not vacuous: a sibling import (even a lazy one) is caught."""
    (tmp_path / "serve").mkdir()
    (tmp_path / "serve" / "x.py").write_text(
        "def f():\n    from thinkbudget.train_fusion import data\n"
    )
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert violations("serve") == ["serve/x.py imports thinkbudget.train_fusion"]


def long_functions(path: Path, limit: int = 60) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            length = node.end_lineno - start + 1
            if length > limit:
                out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return out


@pytest.mark.parametrize("folder", CHECKED)
def test_no_function_over_60_lines_and_no_file_over_350(folder):
    files = python_files(folder)
    assert [f for p in files for f in long_functions(p)] == []
    long_files = [
        f"{p.relative_to(ROOT)} ({n})"
        for p in files
        if (n := len(p.read_text().splitlines())) > 350
    ]
    assert long_files == []

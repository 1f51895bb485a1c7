"""The shape docs/architecture.md describes, kept true: which package may import which, no private
imports across modules, no class over 300 lines, the loop on one screen."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "connector"

# Package (or top-level module) -> what it may import of connector/, as in docs/architecture.md.
ALLOWED: dict[str, set[str]] = {
    "records": set(), "logs": set(), "observability": {"logs"}, "memory": set(),
    "dlq": {"records"},
    "config": {"logs"},
    "decode": {"records"},
    "personalize": {"records", "logs", "observability"},
    "destinations": {"config", "personalize", "records"},
    "routes": {"decode", "destinations", "personalize", "records"},
    "kafka": {"config", "dlq", "records", "logs"},
    "pipeline": {"dlq", "kafka", "routes", "personalize", "records", "logs", "observability"},
    "worker": {"pipeline", "kafka", "routes", "records", "dlq", "observability"},
    "app": {"config", "decode", "destinations", "dlq", "kafka", "logs", "memory", "observability", "personalize",
            "pipeline", "records", "routes", "worker"},
    "tools": {"app", "config", "decode", "destinations", "dlq", "kafka", "logs", "observability",
              "personalize", "records", "pipeline", "routes"},
    "cli": {"app", "tools", "emulator", "logs", "config"},
    "emulator": {"personalize"},
}


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py"))


def _unit(path: Path) -> str:
    """The package or top-level module a file belongs to (`pipeline`, `worker`, ...)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[0]


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "connector":
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "connector"]
    return found


def test_every_unit_is_in_the_table() -> None:
    units = {_unit(p) for p in _modules()} - {"__init__", "py"}
    assert units <= set(ALLOWED), f"add {sorted(units - set(ALLOWED))} to docs/architecture.md and ALLOWED"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layering(path: Path) -> None:
    unit = _unit(path)
    if unit not in ALLOWED:
        return
    for module, names in _imports(path):
        parts = module.split(".")
        target = parts[1] if len(parts) > 1 else (names[0] if names else "")
        if target in (unit, ""):
            continue
        assert target in ALLOWED[unit], f"{path.relative_to(ROOT)} imports {module}: {unit} may not import {target}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_names_are_imported_across_modules(path: Path) -> None:
    for module, names in _imports(path):
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{path.relative_to(ROOT)} imports private {private} from {module}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_class_is_longer_than_300_lines(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            assert length <= 300, f"{path.relative_to(ROOT)}: class {node.name} has {length} lines"


def test_the_worker_loop_fits_on_a_screen_or_two() -> None:
    assert len((ROOT / "worker.py").read_text(encoding="utf-8").splitlines()) <= 250


def test_no_two_test_files_share_a_name() -> None:
    """The test directories are not packages, so pytest imports each file by its base name: a
    second tests/*/test_x.py is an import error at collection (which -n 2 reports as one ERROR)."""
    names = [p.name for p in (ROOT.parent / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []

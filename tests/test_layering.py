"""The arrows of DESIGN.md, checked on the source: a layer imports only the layers below it.

Each rule walks the modules with ``ast`` (no import is executed), so a violation fails here,
naming the file, the line and the import, instead of surfacing later as an import cycle or a
library that cannot be used without the reference app. ``importlib.import_module("...")`` with
a literal name counts as an import too (the package's lazy re-exports use it).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ABOVE_LEDGER = (
    "flwr_stellar.payments",
    "flwr_stellar.report",
    "flwr_stellar.audit",
    "flwr_stellar.app",
    "flwr_stellar.wallet",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) for every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # `from flwr_stellar import app` imports a module
                yield node.lineno, f"{module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def _is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(under: str, forbidden: tuple[str, ...], exempt: str | None = None) -> list[str]:
    """Every import of a ``forbidden`` package from a module in the folder ``under``."""
    found = []
    for path in sorted((ROOT / under).rglob("*.py")):
        if exempt is not None and (ROOT / exempt) in path.parents:
            continue
        lines: set[int] = set()
        for line, module in _imports(path):
            if line not in lines and any(_is_under(module, f) for f in forbidden):
                lines.add(line)  # one finding a statement, naming the first forbidden module
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


def test_the_walker_sees_every_kind_of_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "flwr_stellar" / "ledger"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "bad.py").write_text(
        "import flwr_stellar.payments.amounts\n"
        "from flwr_stellar import report\n"
        "from ..audit import run_audit\n"
        "def f():\n"
        "    from flwr_stellar.app.config import AppConfig\n"
        "    importlib.import_module('flwr_stellar.payments')\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = violations("flwr_stellar/ledger", ABOVE_LEDGER)
    assert [f.split(":")[1].split()[0] for f in found] == ["1", "2", "3", "5", "6"], found


def test_ledger_imports_nothing_above_it() -> None:
    assert violations("flwr_stellar/ledger", ABOVE_LEDGER) == []


def test_the_library_never_imports_the_reference_app() -> None:
    assert violations("flwr_stellar", ("flwr_stellar.app",), exempt="flwr_stellar/app") == []


def test_strategies_never_import_the_reference_app() -> None:
    assert violations("strategies", ("flwr_stellar.app",)) == []

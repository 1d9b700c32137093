"""The dependency rules of docs/DESIGN.md ("Layout and dependency rules"), read from the source
with ``ast`` so that a new import that breaks them fails here.

Every ``import``/``from ... import`` of a ``pinn`` module counts, including those inside
functions (they run too), except those under ``if TYPE_CHECKING:``. ``from pinn import ops``
counts as importing ``pinn.ops``; ``import pinn`` or ``from pinn import <name>`` of the lazy
top-level API counts as importing ``pinn`` itself, which gives access to everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pinn"

#: What each package may import at run time (by module-name prefix), besides itself.
ALLOWED = {
    "pinn.ops": set(),
    "pinn.model": {"pinn.ops"},
    "pinn.refine.model": {"pinn.ops", "pinn.refine.positions"},  # physics only, like the model
    "pinn.refine.positions": {"pinn.ops"},
    "pinn.engine": {"pinn.config", "pinn.errors", "pinn.atomic"},
    "pinn.data": {"pinn.ops", "pinn.errors", "pinn.atomic"},
    "pinn.metrics": {"pinn.errors"},
    "pinn.errors": set(),
    "pinn.atomic": {"pinn.errors"},
    "pinn.config": {"pinn.errors"},
}
#: The only module that may import the command line.
CLI_IMPORTERS = {"pinn.__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(node: ast.ImportFrom, module: str, package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def runtime_imports(source: str, module: str, package: bool = False) -> set[str]:
    """The pinn modules that ``source`` (the text of ``module``) imports at run time."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, package)
            if target == "pinn":  # `from pinn import ops` imports the submodule pinn.ops
                for alias in node.names:
                    sub = PACKAGE / alias.name
                    is_module = sub.is_dir() or sub.with_suffix(".py").is_file()
                    found.add(f"pinn.{alias.name}" if is_module else "pinn")
            else:
                found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return {name for name in found if name == "pinn" or name.startswith("pinn.")}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(module: str, imports: set[str]) -> list[str]:
    """The rules ``module`` breaks by importing ``imports``."""
    found = []
    for package, allowed in ALLOWED.items():
        if not _within(module, package):
            continue
        for name in sorted(imports):
            if not (_within(name, package) or any(_within(name, a) for a in allowed)):
                found.append(f"{module} imports {name} (allowed for {package}: "
                             f"{sorted(allowed) or 'nothing'} besides itself)")
    for name in sorted(imports):
        if (_within(name, "pinn.cli") and module not in CLI_IMPORTERS
                and not _within(module, "pinn.cli")):
            found.append(f"{module} imports {name}: nothing but the entry point imports the CLI")
    return found


def all_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_package_keeps_its_dependency_rules():
    broken = []
    for path in all_modules():
        module = module_name(path)
        broken += violations(module, runtime_imports(path.read_text(encoding="utf-8"), module,
                                                     is_package(path)))
    assert not broken, "\n".join(broken)


def test_every_ruled_package_exists():
    """A renamed package must not leave its rule checking nothing."""
    for package in ALLOWED:
        path = PACKAGE.parent / package.replace(".", "/")
        assert path.is_dir() or path.with_suffix(".py").is_file(), package


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("pinn.ops.translate", "from pinn.data import ScanData",
     ["pinn.ops.translate imports pinn.data"]),
    ("pinn.ops.translate", "from pinn import ops\nfrom . import _windows", []),
    ("pinn.ops.translate", "def f():\n    from pinn.errors import DataError",
     ["imports pinn.errors"]),
    ("pinn.model.generator", "from pinn.config import ModelConfig", ["imports pinn.config"]),
    ("pinn.model.generator",
     "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pinn.config import ModelConfig",
     []),
    ("pinn.model.loss", "import pinn", ["imports pinn "]),
    ("pinn.model.loss", "from pinn import __version__", ["imports pinn "]),
    ("pinn.engine.train", "from ..model import PtychoPINN", ["imports pinn.model"]),
    ("pinn.engine.train", "from pinn.config import TrainingConfig", []),
    ("pinn.data.load", "from pinn.reconstruct import reconstruct", ["imports pinn.reconstruct"]),
    ("pinn.reconstruct", "from pinn.cli import main", ["nothing but the entry point"]),
    ("pinn.__main__", "from pinn.cli import main", []),
    ("pinn.cli.parser", "from pinn.cli import commands", []),
    ("pinn.refine.cli", "from pinn.cli.commands import training_config",
     ["nothing but the entry point"]),
])
def test_the_checker_finds_what_breaks_a_rule(module, source, expected):
    found = violations(module, runtime_imports(source, module))
    assert len(found) == len(expected), found
    for line, text in zip(found, expected):
        assert text in line, (line, text)

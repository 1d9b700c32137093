"""The engine's shape: short functions, no ptychography, a small public surface used by the
rest of pinn instead of the checkpoint's keys."""

from __future__ import annotations

import ast
from pathlib import Path

import pinn.engine

ENGINE = Path(pinn.engine.__file__).parent
PINN = ENGINE.parent
#: pinn modules the engine may import: everything it needs is generic.
ALLOWED = {"pinn.atomic", "pinn.config", "pinn.errors", "pinn.engine"}


def modules(directory: Path):
    for path in sorted(directory.rglob("*.py")):
        yield path, ast.parse(path.read_text())


def test_no_engine_function_is_longer_than_60_lines():
    long = [f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, tree in modules(ENGINE) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > 60]
    assert long == []


def test_the_engine_imports_nothing_of_ptychography():
    imported = set()
    for _, tree in modules(ENGINE):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    own = {name for name in imported if name.startswith("pinn")}
    assert {name for name in own if not any(name == allowed or name.startswith(allowed + ".")
                                            for allowed in ALLOWED)} == set()


def test_the_engine_names_no_ptychography_quantity():
    for path in sorted(ENGINE.rglob("*.py")):
        text = path.read_text().lower()
        for word in ("deviance", "diffraction", "probe", "nphotons"):
            assert word not in text, f"{path.name} names {word!r}"


def test_nothing_outside_the_engine_reads_checkpoint_internals():
    """Other modules use read_history/read_training_state/checkpoint_file, not the keys."""
    for path in sorted(PINN.rglob("*.py")):
        if ENGINE in path.parents:
            continue
        text = path.read_text()
        for needle in ('["state"]', "load_checkpoint", "CHECKPOINT_NAME", "engine.checkpoint"):
            assert needle not in text, f"{path.relative_to(PINN)} uses {needle}"

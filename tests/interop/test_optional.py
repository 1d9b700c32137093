"""Ptychodus is optional: pinn, its command and its modules import without it, and importing
the interop package without it says how to install it. Runs with or without Ptychodus: the
child process hides it."""

from __future__ import annotations

import subprocess
import sys

HIDE = "import sys; sys.modules['ptychodus'] = None; "  # makes `import ptychodus` fail


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HIDE + code], capture_output=True, check=False,
                          text=True, timeout=120)


def test_pinn_imports_without_ptychodus():
    done = _run("import pinn, pinn.cli, pinn.fit, pinn.reconstruct, pinn.interop; "
                "assert 'pinn.interop.ptychodus' not in sys.modules; print('ok')")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_interop_package_says_how_to_install_ptychodus():
    done = _run("import pinn.interop.ptychodus")
    assert done.returncode != 0
    assert "ImportError: pinn.interop.ptychodus needs Ptychodus 1.7" in done.stderr
    assert 'pip install "pinn[ptychodus]"' in done.stderr

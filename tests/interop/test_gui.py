"""``pinn-ptychodus`` without ``--batch`` starts Ptychodus' GUI (headless here: Qt's offscreen
platform) with pinn selected and its settings panel in place of Ptychodus' placeholder. The
child process runs the launcher's own ``main()``; only Qt's event loop is replaced by an
inspection of the window, which then returns."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _ptychodus_helpers import SKIP_REASON

pytest.importorskip("ptychodus.model.core", reason=SKIP_REASON)
pytest.importorskip("PyQt5.QtWidgets", reason="PyQt5 is not installed (Ptychodus' GUI needs it: "
                    "pip install PyQt5); CI installs it")

CHILD = r"""
import sys
from PyQt5.QtWidgets import QApplication, QLabel

def inspect(app):
    app.processEvents()
    labels = [w.text() for top in app.topLevelWidgets() for w in top.findChildren(QLabel)]
    print("LABELS", "|".join(labels))
    from ptychodus.controller.parameters import ParameterWidget
    panels = [w for top in app.topLevelWidgets() for w in top.findChildren(ParameterWidget)
              if any(l.text() == "n_filters_scale:" for l in w.findChildren(QLabel))]
    print("PANELS", len(panels))
    from ptychodus.model import core
    (library,) = core.ProcessingCore.libraries
    print("SELECTED", library.reconstructor.name)
    return 0

QApplication.exec = inspect
from pinn.interop.ptychodus.launcher import main
sys.exit(main([]))
"""


def test_gui_starts_with_pinn_selected_and_its_panel(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path),
           "XDG_RUNTIME_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, check=False,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines()
                 if line.startswith(("LABELS ", "PANELS ", "SELECTED ")))
    assert lines["PANELS"] == "1"
    assert "pinn not found!" not in lines["LABELS"]  # Ptychodus' placeholder for no panel
    assert lines["SELECTED"] == "PtychoPINN"

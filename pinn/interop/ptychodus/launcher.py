"""``pinn-ptychodus``: start Ptychodus (GUI, or ``--batch train|reconstruct``) with pinn in it.

Ptychodus 1.7 has no plugin entry point for reconstructors: ``ModelCore`` builds a
``ProcessingCore`` from a fixed list of libraries. :func:`install` replaces the
``ProcessingCore`` name that ``ptychodus.model.core`` uses by a subclass that appends the
``PINN`` library (same constructor) and makes ``pinn_ptychopinn`` the selected algorithm; a
settings file given to Ptychodus still decides. :func:`main` installs it and runs Ptychodus'
own command line with the same arguments (``pinn-ptychodus --help`` shows them).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pinn.interop.ptychodus.library import ALGORITHM, PinnLibrary

__all__ = ["install", "main"]


def install() -> None:
    """Make every ``ModelCore`` built from now on in this process include the ``PINN``
    library. Idempotent."""
    from ptychodus.model import core

    if getattr(core.ProcessingCore, "appends_pinn", False):
        return

    class ProcessingCoreWithPinn(core.ProcessingCore):
        """Ptychodus' ProcessingCore with pinn's library appended and selected."""

        appends_pinn = True

        def __init__(self, task_manager, settings_registry, product_api,
                     algorithm_libraries) -> None:
            self.pinn_library = PinnLibrary(settings_registry)
            super().__init__(task_manager, settings_registry, product_api,
                             [*algorithm_libraries, self.pinn_library])
            self.algorithm_parameter.set_value(ALGORITHM)

    core.ProcessingCore = ProcessingCoreWithPinn


def main(argv: Sequence[str] | None = None) -> int:
    """Run Ptychodus with pinn installed; ``argv`` are Ptychodus' arguments (default: this
    process's). Returns Ptychodus' exit status."""
    install()
    from ptychodus.__main__ import main as ptychodus_main

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    return int(ptychodus_main())


if __name__ == "__main__":
    sys.exit(main())

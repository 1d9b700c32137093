"""``pinn-ptychodus``: start Ptychodus (GUI, or ``--batch train|reconstruct``) with pinn in it.

Ptychodus 1.7 has no plugin entry point for reconstructors: ``ModelCore`` builds a
``ProcessingCore`` from a fixed list of libraries. :func:`install` replaces the
``ProcessingCore`` name that ``ptychodus.model.core`` uses by a subclass that appends the
``PINN`` library (same constructor) and makes ``pinn_ptychopinn`` the selected algorithm; a
settings file given to Ptychodus still decides. With ``panel=True`` it also gives the GUI's
``ProcessingController`` pinn's settings panel (:mod:`.gui`). :func:`main` installs both (the
panel only when the GUI starts) and runs Ptychodus' own command line with the same arguments
(``pinn-ptychodus --help`` shows them); a pinn error that escapes Ptychodus' own handling
(a corrupt ``INPUT/model.zip`` in batch mode) ends the run with one log line and status 2.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import ClassVar

from pinn.errors import PinnError
from pinn.interop.ptychodus.library import ALGORITHM, PinnLibrary

__all__ = ["install", "main"]

logger = logging.getLogger(__name__)

#: The exit status of a pinn error that reaches the launcher: the input was unusable and no
#: work was done (Ptychodus' ``ExitCode.USAGE``, pinn's own usage status).
EXIT_USAGE = 2


def install(*, panel: bool = False) -> None:
    """Make every Ptychodus ``ModelCore`` built from now on in this process include the
    ``PINN`` library (and, with ``panel``, every GUI its settings panel). Idempotent.

    Raises:
        ImportError: ``panel`` is set and PyQt5 (or Ptychodus' GUI) cannot be imported.
    """
    from ptychodus.model import core

    if not getattr(core.ProcessingCore, "appends_pinn", False):

        class ProcessingCoreWithPinn(core.ProcessingCore):
            """Ptychodus' ProcessingCore with pinn's library appended and selected."""

            appends_pinn = True
            #: the library of each core built in this process (the GUI panel uses the last)
            libraries: ClassVar[list[PinnLibrary]] = []

            def __init__(self, task_manager, settings_registry, product_api,
                         algorithm_libraries) -> None:
                self.pinn_library = PinnLibrary(settings_registry)
                super().__init__(task_manager, settings_registry, product_api,
                                 [*algorithm_libraries, self.pinn_library])
                self.algorithm_parameter.set_value(ALGORITHM)
                ProcessingCoreWithPinn.libraries.append(self.pinn_library)

        core.ProcessingCore = ProcessingCoreWithPinn
    if panel:
        _install_panel(core.ProcessingCore.libraries)


def _install_panel(libraries: list[PinnLibrary]) -> None:
    from ptychodus.controller import core as controller

    from pinn.interop.ptychodus.gui import PinnViewControllerFactory

    if getattr(controller.ProcessingController, "shows_pinn", False):
        return

    class ProcessingControllerWithPinn(controller.ProcessingController):
        """Ptychodus' ProcessingController with pinn's settings panel."""

        shows_pinn = True

        def __init__(self, algorithm_parameter, processing_api, product_repository,
                     product_table_model, globus, genesis, view, status_view,
                     file_dialog_factory, view_controller_factories) -> None:
            factories = [*view_controller_factories,
                         *(PinnViewControllerFactory(lib.settings) for lib in libraries[-1:])]
            super().__init__(algorithm_parameter, processing_api, product_repository,
                             product_table_model, globus, genesis, view, status_view,
                             file_dialog_factory, factories)

    controller.ProcessingController = ProcessingControllerWithPinn


def main(argv: Sequence[str] | None = None) -> int:
    """Run Ptychodus with pinn installed; ``argv`` are Ptychodus' arguments (default: this
    process's). Returns Ptychodus' exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    batch = any(a in ("-b", "--batch") or a.startswith(("--batch=", "-b")) for a in args)
    install()
    if not batch:
        try:
            install(panel=True)
        except ImportError as exc:  # Ptychodus itself reports a missing PyQt5
            logger.warning("pinn's settings panel is unavailable (%s); edit the Pinn* groups "
                           "in the settings view", exc)
    from ptychodus.__main__ import main as ptychodus_main

    sys.argv = [sys.argv[0], *args]
    try:
        return int(ptychodus_main())
    except PinnError as exc:
        # Ptychodus' batch mode loads INPUT/model.zip outside its error handling; a pinn error
        # is one a user can fix, so it is one line in Ptychodus' log format, not a traceback
        logger.error("%s", exc)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

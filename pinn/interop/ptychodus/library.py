"""The ``PINN`` reconstructor library: what Ptychodus lists, with its settings groups.

Ptychodus 1.7 keys a reconstructor as ``<library>_<reconstructor>`` lower-cased and splits the
key at the first ``_``, so the library name must not contain one: pinn's reconstructor is
``pinn_ptychopinn`` (the value of ``Algorithm`` in a ``settings.ini``'s ``[Processing]``).
"""

from __future__ import annotations

from collections.abc import Iterator

from ptychodus.api.reconstruct import Reconstructor, ReconstructorLibrary
from ptychodus.api.settings import SettingsRegistry

from pinn.interop.ptychodus.reconstructor import PinnReconstructor
from pinn.interop.ptychodus.settings import PinnSettings

__all__ = ["ALGORITHM", "LIBRARY_NAME", "PinnLibrary"]

LIBRARY_NAME = "PINN"
RECONSTRUCTOR_NAME = "PtychoPINN"
#: The key Ptychodus selects pinn by (``[Processing] Algorithm`` in ``settings.ini``).
ALGORITHM = f"{LIBRARY_NAME}_{RECONSTRUCTOR_NAME}".casefold()


class PinnLibrary(ReconstructorLibrary):
    """Ptychodus' view of pinn: one trainable reconstructor, ``PtychoPINN``, that reads the
    ``PinnModel``, ``PinnTraining`` and ``PinnInference`` settings groups it registers in
    ``settings_registry`` and runs its work in fresh processes.

    Args:
        settings_registry: Ptychodus' settings registry (``ModelCore.settings_registry``).
        is_developer_mode_enabled: accepted for symmetry with Ptychodus' own libraries.
    """

    def __init__(self, settings_registry: SettingsRegistry,
                 is_developer_mode_enabled: bool = False) -> None:
        super().__init__("pinn.interop.ptychodus")
        self.settings = PinnSettings(settings_registry)
        self.reconstructor = PinnReconstructor(self.settings.options, name=RECONSTRUCTOR_NAME,
                                               isolate=True)

    @property
    def name(self) -> str:
        return LIBRARY_NAME

    def __iter__(self) -> Iterator[Reconstructor]:
        return iter([self.reconstructor])

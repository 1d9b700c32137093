"""pinn's settings panel in Ptychodus' GUI (needs PyQt5, as the GUI itself does).

Ptychodus shows, under the algorithm selector, a panel made by the view-controller factory
whose name matches the library; without one it shows a placeholder. This factory lays out the
``PinnModel``, ``PinnTraining``, ``PinnInference`` and ``PinnRefinement`` parameters with
Ptychodus' own widgets: a check box per flag, a choice list where pinn accepts only some
values, a text field otherwise.
"""

from __future__ import annotations

from ptychodus.api.parameters import BooleanParameter, IntegerParameter, RealParameter
from ptychodus.controller.parameters import ParameterViewBuilder
from ptychodus.controller.processing.core import ReconstructorViewControllerFactory
from PyQt5.QtWidgets import QWidget

from pinn.config import AMP_ACTIVATIONS, PRECISIONS
from pinn.interop.ptychodus.counts import BAD_PIXEL_FILLS
from pinn.interop.ptychodus.library import LIBRARY_NAME
from pinn.interop.ptychodus.settings import PinnSettings

__all__ = ["PinnViewControllerFactory"]

_CHOICES = {"amp_activation": AMP_ACTIVATIONS, "precision": PRECISIONS,
            "bad_pixels": BAD_PIXEL_FILLS}
_TITLES = {"model": "Model", "training": "Training", "inference": "Inference",
           "refine": "Refinement"}


class PinnViewControllerFactory(ReconstructorViewControllerFactory):
    """Builds the panel of the ``PINN`` library from its settings."""

    def __init__(self, settings: PinnSettings) -> None:
        super().__init__()
        self._settings = settings

    @property
    def name(self) -> str:
        return LIBRARY_NAME

    def create_view_controller(self, reconstructor_name: str) -> QWidget:
        builder = ParameterViewBuilder()
        for role, group in self._settings.groups().items():
            title = _TITLES[role]
            for name, parameter in group.parameters().items():
                label = f"{name}:"
                if name in _CHOICES:
                    builder.add_combo_box(parameter, _CHOICES[name], label, group=title)
                elif isinstance(parameter, BooleanParameter):
                    builder.add_check_box(parameter, label, group=title)
                elif isinstance(parameter, IntegerParameter):
                    builder.add_integer_line_edit(parameter, label, group=title)
                elif isinstance(parameter, RealParameter):
                    builder.add_decimal_line_edit(parameter, label, group=title)
                else:
                    builder.add_line_edit(parameter, label, group=title)
        return builder.build_widget()

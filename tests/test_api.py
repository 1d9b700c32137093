"""The top-level public API: small, sorted, lazy."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pinn


def test_all_is_sorted_and_small():
    assert pinn.__all__ == sorted(pinn.__all__)
    assert 10 <= len(pinn.__all__) <= 20


@pytest.mark.parametrize("name", pinn.__all__)
def test_every_public_name_resolves(name):
    value = getattr(pinn, name)
    assert value is not None
    assert name in dir(pinn)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'simulat'"):
        pinn.simulat  # noqa: B018


def test_importing_pinn_does_not_import_torch():
    """The pinn command sets OpenMP's wait policy before torch loads; a top-level torch
    import would make that impossible."""
    code = "import sys, pinn, pinn.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"

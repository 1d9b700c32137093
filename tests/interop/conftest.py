"""Shared fixtures of the Ptychodus interop tests: a tiny simulated scan as a Ptychodus input
and tiny, fast training options. Nothing here imports Ptychodus at import time, so that
test_optional.py runs without it; the other modules skip without it."""

from __future__ import annotations

import pytest
from _ptychodus_helpers import PIXEL_M

from pinn.config import Config, ModelConfig, TrainingConfig
from pinn.data import simulate


@pytest.fixture(scope="session")
def scan():
    """30 noisy patterns of 64 x 64 on a 96 x 96 object."""
    return simulate("grf", n_scans=30, size=64, object_size=96, photons=1e5, seed=0)


@pytest.fixture(scope="session")
def product_and_counts(scan):
    """The scan as a Ptychodus product and assembled counts."""
    from pinn.interop.ptychodus import product_from_scan

    return product_from_scan(scan, pixel_size_m=PIXEL_M)


@pytest.fixture(scope="session")
def reconstruct_input(product_and_counts):
    from ptychodus.api.reconstruct import ReconstructInput

    product, diffraction = product_and_counts
    return ReconstructInput(diffraction.get_patterns(), diffraction.get_bad_pixels(), product)


@pytest.fixture(scope="session")
def options():
    """One epoch of the smallest network, quiet."""
    from pinn.interop.ptychodus import PinnOptions

    return PinnOptions(config=Config(model=ModelConfig(n_filters_scale=1),
                                     training=TrainingConfig(epochs=1, batch_size=8)),
                       verbose=False)


@pytest.fixture(scope="session")
def two_mode_product_and_counts(product_and_counts):
    """The product with a 2-mode probe (mode 1 is 0.3 x mode 0), and the same counts."""
    import numpy as np
    from ptychodus.api.probe import ProbeSequence
    from ptychodus.api.product import Product

    product, diffraction = product_and_counts
    probes = product.probes.get_array()  # (1, 1, N, N)
    two = ProbeSequence(array=np.concatenate([probes, 0.3 * probes], axis=1), opr_weights=None,
                        pixel_geometry=product.probes.get_pixel_geometry())
    return Product(metadata=product.metadata, probe_positions=product.probe_positions,
                   probes=two, object_=product.object_, losses=list(product.losses)), diffraction


@pytest.fixture(scope="session")
def two_component_product_and_counts(two_mode_product_and_counts):
    """The 2-mode product with a second OPR component (0.5 x the first), and the same counts:
    pinn keeps component 0 (both modes) and warns about the other."""
    import numpy as np
    from ptychodus.api.probe import ProbeSequence
    from ptychodus.api.product import Product

    product, diffraction = two_mode_product_and_counts
    probes = product.probes.get_array()  # (1, 2, N, N)
    two = ProbeSequence(array=np.concatenate([probes, 0.5 * probes]), opr_weights=None,
                        pixel_geometry=product.probes.get_pixel_geometry())
    return Product(metadata=product.metadata, probe_positions=product.probe_positions,
                   probes=two, object_=product.object_, losses=list(product.losses)), diffraction

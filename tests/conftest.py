"""Shared test configuration: hypothesis profiles and paths to the shared fixtures and data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "long", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("PINN_HYPOTHESIS_PROFILE", "ci"))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures" / "upstream_tf"
DATA = SHARED / "data"


@pytest.fixture(autouse=True)
def _seed_torch():
    """Every test starts from the same global torch RNG state (pinn itself never uses it)."""
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module: faster for tiny networks, and on a shared
    machine two OpenMP threads waiting for each other made an epoch up to fifty times slower.
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"the shared TensorFlow fixtures are not at {FIXTURES}")
    return FIXTURES


@pytest.fixture
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"the shared real data is not at {DATA} (it lives beside the project)")
    return DATA

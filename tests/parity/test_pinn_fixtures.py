"""pinn's ops reproduce every golden array of the TensorFlow reference (no TensorFlow needed).

Each fixture's inputs are converted from the reference's conventions to pinn's at the boundary
(``conventions.py``), run through ``pinn.ops`` only, and converted back. Every output listed in
the fixture index is compared within ``1e-5 x max|reference|`` (``1e-4`` for what the in-model
merge divides by its 0.001 floor).
"""

from __future__ import annotations

import functools

import pytest

import conventions
import fixture_cases

CASES = fixture_cases.cases()


@functools.lru_cache(maxsize=None)
def _replay(name: str) -> dict:
    return fixture_cases.replay(conventions, name)


@pytest.fixture(scope="module", autouse=True)
def _require_fixtures():
    if not CASES:
        pytest.skip(f"the shared TensorFlow fixtures are not at {fixture_cases.FIXTURES}")


@pytest.mark.parametrize(("name", "output"), CASES or [("missing", "missing")])
def test_pinn_reproduces_fixture(name, output, record_property):
    actual = _replay(name)[output]
    expected = fixture_cases.expected(name, output)
    err = fixture_cases.rel_error(actual, expected)
    record_property("rel_error", err)
    assert err <= fixture_cases.tolerance(name, output), (
        f"{name}/{output}: max|pinn - reference| / max|reference| = {err:.3g}")


def test_every_fixture_output_is_replayed():
    """The replay produces every output the index lists, so none is silently left out."""
    for name, entry in fixture_cases.index().items():
        missing = set(entry["outputs"]) - set(_replay(name))
        assert not missing, f"{name}: outputs {sorted(missing)} are not replayed"

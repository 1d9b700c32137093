"""The TensorFlow re-statement in ``tf_reference.py`` reproduces every golden array of the real
reference, so it can serve as the oracle of the hypothesis tests in ``test_ops_parity.py``.

Every output listed in the fixture index is compared within ``1e-5 x max|reference|`` (``1e-4``
for what the in-model merge divides by its 0.001 floor).
"""

from __future__ import annotations

import functools

import pytest

import fixture_cases
import tf_reference  # skips this module when TensorFlow is missing

pytestmark = pytest.mark.parity

CASES = fixture_cases.cases()


@functools.lru_cache(maxsize=None)
def _replay(name: str) -> dict:
    return fixture_cases.replay(tf_reference, name)


@pytest.fixture(scope="module", autouse=True)
def _require_fixtures():
    if not CASES:
        pytest.skip(f"the shared TensorFlow fixtures are not at {fixture_cases.FIXTURES}")


@pytest.mark.parametrize(("name", "output"), CASES or [("missing", "missing")])
def test_tf_reference_reproduces_fixture(name, output, record_property):
    actual = _replay(name)[output]
    expected = fixture_cases.expected(name, output)
    err = fixture_cases.rel_error(actual, expected)
    record_property("rel_error", err)
    assert err <= fixture_cases.tolerance(name, output), (
        f"{name}/{output}: max|tf_reference - reference| / max|reference| = {err:.3g}")


def test_every_fixture_output_is_replayed():
    """The replay produces every output the index lists, so none is silently left out."""
    for name, entry in fixture_cases.index().items():
        missing = set(entry["outputs"]) - set(_replay(name))
        assert not missing, f"{name}: outputs {sorted(missing)} are not replayed"

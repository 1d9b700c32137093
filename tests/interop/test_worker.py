"""The worker process reports errors by type name and text, never as pickled objects."""

from __future__ import annotations

import pytest
from _ptychodus_helpers import SKIP_REASON

pytest.importorskip("ptychodus.api.reconstruct", reason=SKIP_REASON)

from pinn.errors import DataError  # noqa: E402
from pinn.interop.ptychodus import worker  # noqa: E402


def test_a_child_error_arrives_as_the_same_pinn_exception(tmp_path):
    missing = tmp_path / "nothing-here"
    process, connection = worker.spawn(worker.training_source, missing)
    try:
        with pytest.raises(DataError, match="no training data at .*nothing-here"):
            worker.receive(process, connection, timeout_s=None)
    finally:
        worker.stop(process)


def test_a_child_result_arrives(tmp_path):
    scan = tmp_path / "scan.npz"
    scan.write_bytes(b"")
    process, connection = worker.spawn(worker.training_source, scan)
    try:
        assert worker.receive(process, connection) == (True, scan)
    finally:
        worker.stop(process)


@pytest.mark.parametrize(("name", "expected"), [("DataError", DataError),
                                                ("ValueError", ValueError),
                                                ("SomethingElse", RuntimeError)])
def test_error_types_are_rebuilt_by_name_only(name, expected):
    error = worker._rebuild(name, "what went wrong")
    assert type(error) is expected
    assert "what went wrong" in str(error)
    if expected is RuntimeError:
        assert str(error) == "SomethingElse: what went wrong"

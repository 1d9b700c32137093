"""The worker process reports errors by type name and text, never as pickled objects, and
hands its log records to the parent's loggers."""

from __future__ import annotations

import logging

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



@pytest.fixture
def reconstruction_args(two_component_product_and_counts, options):
    """Arguments of worker.reconstruct_product for a tiny untrained model and an input whose
    probe has 2 OPR components of 2 modes (the child keeps component 0, with a warning)."""
    from ptychodus.api.reconstruct import ReconstructInput

    from pinn.archive import Archive
    from pinn.config import Config, ModelConfig
    from pinn.model import build_model

    product, diffraction = two_component_product_and_counts
    model = build_model(ModelConfig(n_filters_scale=1))
    return (Archive(model=model, config=Config(model=model.config)),
            ReconstructInput(diffraction.get_patterns(), diffraction.get_bad_pixels(), product),
            options)


def test_child_log_records_reach_the_parent_loggers(reconstruction_args, caplog):
    """A probe of 2 OPR components is reduced to component 0 in the child; the warning must
    reach the parent's logging (Ptychodus' format and handlers), not the child's bare
    stderr."""
    with caplog.at_level(logging.WARNING):
        process, connection = worker.spawn(worker.reconstruct_product, *reconstruction_args)
        try:
            done, product = worker.receive(process, connection)
        finally:
            worker.stop(process)
    assert done and product.object_.get_array().shape == (1, 96, 96)
    (record,) = [r for r in caplog.records if r.name == "pinn.interop.ptychodus.convert"]
    assert record.levelname == "WARNING" and "\n" not in record.getMessage()
    assert "keeps OPR component 0" in record.getMessage()
    assert "(2 components, 2 incoherent modes each)" in record.getMessage()
    assert record.process == process.pid  # the child's record, handed on


def test_child_records_below_the_parent_level_are_not_shown(reconstruction_args, caplog):
    with caplog.at_level(logging.ERROR):
        process, connection = worker.spawn(worker.reconstruct_product, *reconstruction_args)
        try:
            assert worker.receive(process, connection)[0]
        finally:
            worker.stop(process)
    assert not [r for r in caplog.records if r.name.startswith("pinn")]

"""Tests of pinn.engine.schedule against Keras's ReduceLROnPlateau and EarlyStopping semantics.

Keras (mode 'min'): ReduceLROnPlateau counts an epoch as an improvement when
``value < best - min_delta``; otherwise ``wait += 1`` and once ``wait >= patience`` the rate
becomes ``max(lr * factor, min_lr)`` (only while ``lr > min_lr``) and ``wait`` resets.
EarlyStopping (``min_delta=0``) stops once ``patience`` epochs in a row did not beat the best
strictly.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pinn.engine.schedule import EarlyStopping, Plateau


def rates(plateau: Plateau, values: list[float]) -> list[float]:
    return [plateau.update(v) for v in values]


def keras_plateau(values, lr, factor, patience, min_lr, min_delta):
    """Direct transcription of keras.callbacks.ReduceLROnPlateau.on_epoch_end (cooldown 0)."""
    best, wait, out = math.inf, 0, []
    for current in values:
        if current < best - min_delta:
            best, wait = current, 0
        else:
            wait += 1
            if wait >= patience and lr > min_lr:
                lr = max(lr * factor, min_lr)
                wait = 0
        out.append(lr)
    return out


def keras_early_stopping(values, patience):
    """Epoch (1-based) at which keras.callbacks.EarlyStopping stops, or None."""
    best, wait = math.inf, 0
    for epoch, current in enumerate(values):
        wait += 1
        if current < best:
            best, wait = current, 0
            continue
        if wait >= patience and epoch > 0:
            return epoch + 1
    return None


def test_plateau_reduces_after_patience_bad_epochs():
    plateau = Plateau(lr=1e-3, factor=0.5, patience=2, min_lr=1e-5)
    assert rates(plateau, [1.0, 1.0]) == [1e-3, 1e-3]  # one bad epoch: wait 1
    assert plateau.wait == 1
    assert plateau.update(1.0) == 5e-4  # second bad epoch: reduce, wait resets
    assert plateau.wait == 0
    assert rates(plateau, [1.0, 1.0]) == [5e-4, 2.5e-4]


def test_plateau_improvement_resets_wait():
    plateau = Plateau(lr=1.0, factor=0.5, patience=2, min_lr=1e-3)
    assert rates(plateau, [5.0, 6.0, 4.0, 6.0, 6.0]) == [1.0, 1.0, 1.0, 1.0, 0.5]
    assert plateau.best == 4.0


def test_plateau_needs_more_than_min_delta():
    plateau = Plateau(lr=1.0, factor=0.5, patience=1, min_lr=1e-3, min_delta=0.1)
    plateau.update(1.0)
    assert plateau.update(0.95) == 0.5  # 0.95 is not below 1.0 - 0.1
    assert plateau.best == 1.0
    assert plateau.update(0.85) == 0.5  # this one is
    assert plateau.best == 0.85


def test_plateau_never_goes_below_min_lr():
    plateau = Plateau(lr=1e-3, factor=0.1, patience=1, min_lr=3e-4)
    assert rates(plateau, [1.0, 1.0, 1.0, 1.0]) == [1e-3, 3e-4, 3e-4, 3e-4]
    assert plateau.lr == 3e-4
    # At the floor Keras stops resetting wait (no reduction happens).
    assert plateau.wait == 2


def test_plateau_nan_counts_as_a_bad_epoch():
    plateau = Plateau(lr=1.0, factor=0.5, patience=1, min_lr=1e-3)
    plateau.update(1.0)
    assert plateau.update(math.nan) == 0.5


@given(values=st.lists(st.floats(0, 10, allow_nan=False), max_size=30),
       patience=st.integers(0, 4), factor=st.sampled_from([0.1, 0.5, 0.9]),
       min_delta=st.sampled_from([0.0, 1e-4, 0.5]))
def test_plateau_matches_keras_transcription(values, patience, factor, min_delta):
    plateau = Plateau(lr=1e-2, factor=factor, patience=patience, min_lr=1e-4,
                      min_delta=min_delta)
    assert rates(plateau, values) == keras_plateau(values, 1e-2, factor, patience, 1e-4,
                                                   min_delta)


def test_plateau_state_round_trips_through_json():
    plateau = Plateau(lr=1e-3, patience=3)
    plateau.update(2.0)
    plateau.update(3.0)
    restored = Plateau(**json.loads(json.dumps(plateau.state_dict())))
    assert restored == plateau
    fresh = Plateau(lr=1e-3)
    assert Plateau(**json.loads(json.dumps(fresh.state_dict()))).best == math.inf
    for value in [3.0, 3.0, 3.0, 1.0]:
        assert restored.update(value) == plateau.update(value)


def test_early_stopping_after_patience_epochs_without_strict_improvement():
    stopper = EarlyStopping(patience=3)
    assert [stopper.update(v) for v in [2.0, 1.0, 1.0, 1.0]] == [False] * 4
    assert stopper.update(1.0) is True  # the third epoch in a row that does not beat 1.0


def test_early_stopping_improvement_resets_wait():
    stopper = EarlyStopping(patience=2)
    assert [stopper.update(v) for v in [3.0, 4.0, 2.0, 5.0, 5.0]] == [
        False, False, False, False, True]


def test_early_stopping_any_strict_improvement_counts():
    stopper = EarlyStopping(patience=1)
    stopper.update(1.0)
    assert stopper.update(1.0 - 1e-12) is False  # min_delta 0: tiny gains count
    assert stopper.update(1.0 - 1e-12) is True


def test_early_stopping_patience_zero_never_stops():
    stopper = EarlyStopping(patience=0)
    assert not any(stopper.update(1.0) for _ in range(20))


@pytest.mark.parametrize("patience", [1, 2, 3, 5])
@given(values=st.lists(st.sampled_from([0.5, 1.0, 1.5, 2.0]), max_size=20))
def test_early_stopping_matches_keras_transcription(patience, values):
    stopper = EarlyStopping(patience=patience)
    stopped_at = None
    for epoch, value in enumerate(values):
        if stopper.update(value):
            stopped_at = epoch + 1
            break
    assert stopped_at == keras_early_stopping(values, patience)


def test_early_stopping_state_round_trips_through_json():
    stopper = EarlyStopping(patience=2)
    stopper.update(1.0)
    stopper.update(2.0)
    restored = EarlyStopping(**json.loads(json.dumps(stopper.state_dict())))
    assert restored == stopper
    assert restored.update(2.0) is True

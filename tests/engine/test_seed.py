"""Tests of pinn.engine.seed: one switch makes CPU training bitwise reproducible."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from _engine_helpers import ImageSet, assert_bitwise_equal, config, make_model, mse_loss, weights
from pinn.engine.seed import epoch_generator, seed_everything
from pinn.engine.train import train


def trained_weights(seed: int, **changes) -> dict[str, torch.Tensor]:
    model = make_model(seed, dropout=0.2)
    train(model, mse_loss, ImageSet(12), ImageSet(4, seed=2), config(seed=seed, **changes),
          verbose=False)
    return weights(model)


def test_same_seed_gives_bitwise_equal_weights():
    first = trained_weights(3)
    torch.manual_seed(12345)  # disturb the global RNG between the runs: the seed must win
    np.random.seed(7)
    second = trained_weights(3)
    assert_bitwise_equal(first, second)
    assert not torch.equal(first["conv1.weight"], make_model(3).conv1.weight), \
        "training did not change the weights; the comparison proves nothing"


def test_same_seed_with_accumulation_and_clipping_gives_bitwise_equal_weights():
    first = trained_weights(5, grad_accumulation=2, grad_clip_norm=0.01, batch_size=2)
    second = trained_weights(5, grad_accumulation=2, grad_clip_norm=0.01, batch_size=2)
    assert_bitwise_equal(first, second)


def test_different_seed_gives_different_weights():
    first, second = trained_weights(3), trained_weights(4)
    assert all(not torch.equal(first[k], second[k]) for k in first if k.startswith("conv"))


def test_training_seed_alone_changes_the_result():
    """Same initial weights, different ``config.seed``: data order and dropout differ."""
    model_a, model_b = make_model(0, dropout=0.2), make_model(0, dropout=0.2)
    assert_bitwise_equal(weights(model_a), weights(model_b))
    train(model_a, mse_loss, ImageSet(12), None, config(seed=1), verbose=False)
    train(model_b, mse_loss, ImageSet(12), None, config(seed=2), verbose=False)
    assert not torch.equal(model_a.conv1.weight, model_b.conv1.weight)


def test_seed_everything_seeds_python_numpy_and_torch():
    seed_everything(11, True)
    drawn = (random.random(), np.random.rand(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(3)
    seed_everything(11, True)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert drawn[:2] == again[:2]
    assert torch.equal(drawn[2], again[2])


@pytest.mark.parametrize("deterministic", [True, False])
def test_deterministic_switch(deterministic):
    try:
        seed_everything(0, deterministic)
        assert torch.are_deterministic_algorithms_enabled() is deterministic
        assert torch.backends.cudnn.deterministic is deterministic
        if deterministic:
            assert torch.backends.cudnn.benchmark is False
    finally:
        seed_everything(0, True)


def test_deterministic_mode_does_not_fill_new_tensors():
    """torch's deterministic mode fills every new tensor with NaN by default (a pass over
    memory per tensor); seeding switches that off and determinism stays on."""
    torch.utils.deterministic.fill_uninitialized_memory = True
    seed_everything(0, True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory is False


@pytest.mark.parametrize("seed", [2**40 + 3, -5])
def test_seed_everything_accepts_seeds_outside_numpys_range(seed):
    seed_everything(seed, True)  # numpy only takes seeds in [0, 2**32)
    values = (np.random.rand(), torch.rand(()))
    seed_everything(seed, True)
    assert values == (np.random.rand(), torch.rand(()))


def test_epoch_generator_depends_on_seed_and_epoch_only():
    def order(seed, epoch):
        return torch.randperm(50, generator=epoch_generator(seed, epoch))

    torch.manual_seed(99)  # the global RNG plays no part
    assert torch.equal(order(0, 3), order(0, 3))
    assert not torch.equal(order(0, 3), order(0, 4))
    assert not torch.equal(order(0, 3), order(1, 3))
    assert order(2**62, 0).shape == (50,)  # huge seeds are folded into range

"""A Keras 3 statement of the reference's CNN and of its training step, for parity tests.

Written from a study of the reference's code (summarised in docs/DESIGN.md §7.3-7.6), in the
reference's own conventions: channels-last ``(B, N, N, C)`` images, group offsets
``(B, 1, 2, C)`` ordered ``(x, y)`` (``coords_relative = centroid - position``), flat patches
``(B*C, N, N, 1)``.

- :func:`build_generator` is ``create_autoencoder``: an encoder of conv-conv-maxpool blocks,
  two decoders (amplitude, phase) of conv-conv-upsample blocks, and the output head of each
  decoder (centre branch on the first F-4 feature channels zero-padded by N/4, border branch on
  the last 4 with swish; or a full-patch head without ``pad_object``).
- :func:`reference_forward` is the training model: intensity scaler, CNN, and then
  (:func:`reference_physics`) polar combination, per-group merge, trim, extraction,
  illumination, diffraction, inverse scaler. The physics comes from the TensorFlow op reference
  ``tf_reference.py`` (its private graph builders ``_merge``, ``_extract``, ``_illuminate``,
  ``_diffract``..., which are differentiable); this module adds only the network and the glue.
- :func:`reference_loss` is the compiled loss ``1 * mean(NLL) + 0 * mean(MAE)``.
- :func:`copy_weights` copies the Keras convolutions into a pinn generator, layer by layer in
  the order both networks create them.
- :func:`torch_adam_epsilon` is the torch Adam epsilon that reproduces a Keras Adam step.

Importing this module skips the calling test module when TensorFlow or Keras is missing.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

try:  # tests/parity as a package or as a rootdir-inserted directory
    from . import tf_reference as tfr
except ImportError:
    import tf_reference as tfr

#: Filter ladders before ``n_filters_scale`` (§5.2): encoder per N, decoder base per N.
ENCODER_FILTERS = {64: (32, 64, 128), 128: (16, 32, 64, 128), 256: (8, 16, 32, 64, 128)}
DECODER_FILTERS = {64: (64, 32), 128: (128, 64, 32), 256: (256, 128, 64, 32)}
C_OUTER = 4  # feature channels of the decoder base that feed the border branch (§5.3)

#: The reference's optimiser (``model.py``): Keras Adam defaults with lr 1e-3.
ADAM = {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}


def torch_adam_epsilon(step: int) -> float:
    """The ``eps`` that makes ``torch.optim.Adam``'s update number ``step`` (1-based) equal Keras's.

    Keras adds epsilon to ``sqrt(v)`` before the bias correction (the Adam paper's "epsilon
    hat"): ``w -= lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + eps)``; torch adds it
    after: ``w -= lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)``. They agree when
    torch's ``eps`` is ``eps / sqrt(1 - b2**t)`` (3.2e-6 at the first step, 1e-7 in the limit).
    """
    return ADAM["epsilon"] / math.sqrt(1 - ADAM["beta_2"] ** step)


@dataclass
class KerasGenerator:
    """The Keras CNN and its convolutions in creation order.

    model: inputs ``(B, N, N, C)`` normalised amplitudes -> ``[amplitude, phase]``, each
    ``(B, N, N, C_out)`` float32. convs: every ``Conv2D`` in the order it was created (encoder,
    then the amplitude decoder and head, then the phase decoder and head).
    """

    model: keras.Model
    convs: list


def build_generator(n: int, gridsize: int = 1, n_filters_scale: int = 2,
                    amp_activation: str = "sigmoid", object_big: bool = True,
                    probe_big: bool = True, pad_object: bool = True,
                    seed: int = 0) -> KerasGenerator:
    """The reference CNN (§5) with glorot-uniform kernels drawn from ``seed``.

    Biases start at zero as in the reference; :func:`randomize_biases` makes them non-zero so
    that a bias copied to the wrong layer shows in a comparison.
    """
    if n not in ENCODER_FILTERS:
        raise ValueError(f"N={n} is not one of {sorted(ENCODER_FILTERS)}")
    keras.utils.set_random_seed(seed)
    channels = gridsize**2
    c_out = channels if object_big else 1
    s_f = n_filters_scale
    convs: list = []

    def conv(x, filters, activation, name):
        layer = keras.layers.Conv2D(filters, 3, padding="same", activation=activation, name=name)
        convs.append(layer)
        return layer(x)

    def conv_pool_block(x, filters, name):
        x = conv(x, filters, "relu", f"{name}_conv1")
        x = conv(x, filters, "relu", f"{name}_conv2")
        return keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"{name}_pool")(x)

    def conv_up_block(x, filters, name):
        x = conv(x, filters, "relu", f"{name}_conv1")
        x = conv(x, filters, "relu", f"{name}_conv2")
        return keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(x)

    border_mask = np.ones((n, n, 1), np.float32)  # mk_centermask 'border'
    border_mask[n // 4:3 * n // 4, n // 4:3 * n // 4] = 0

    def head(d, activation, name):  # create_decoder_last
        up_filters = s_f * 2048 // n
        if not pad_object:
            x = conv_up_block(d, up_filters, f"{name}_full_block")
            x = conv(x, c_out, None, f"{name}_full_conv")
            return activation(x)
        features = d.shape[-1]
        x1 = conv(d[..., :features - C_OUTER], c_out, None, f"{name}_centre_conv")
        x1 = keras.layers.ZeroPadding2D(n // 4, name=f"{name}_centre_pad")(activation(x1))
        if not probe_big:
            return x1
        x2 = conv_up_block(d[..., features - C_OUTER:], up_filters, f"{name}_border_block")
        x2 = conv(x2, c_out, None, f"{name}_border_conv")
        x2 = keras.layers.Activation("swish", name=f"{name}_border_swish")(x2)
        x2 = keras.layers.Lambda(lambda t: t * border_mask, name=f"{name}_border_mask")(x2)
        return keras.layers.Add(name=f"{name}_sum")([x1, x2])

    inputs = keras.Input((n, n, channels), name="input")
    x = inputs
    for i, filters in enumerate(ENCODER_FILTERS[n]):
        x = conv_pool_block(x, s_f * filters, f"encoder{i}")
    code = x

    outputs = []
    for name, activation in (
            ("amp", keras.layers.Activation(amp_activation, name="amp_activation")),
            ("phase", keras.layers.Lambda(lambda t: math.pi * keras.ops.tanh(t),
                                          name="phase_activation"))):
        x = code
        for i, filters in enumerate(DECODER_FILTERS[n]):
            x = conv_up_block(x, s_f * filters, f"{name}_decoder{i}")
        outputs.append(head(x, activation, name))
    return KerasGenerator(keras.Model(inputs, outputs, name="reference_cnn"), convs)


def randomize_biases(generator: KerasGenerator, seed: int, scale: float = 0.05) -> None:
    """Draw every conv bias from U(-scale, scale) (the reference starts them at zero)."""
    rng = np.random.default_rng(seed)
    for layer in generator.convs:
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel, rng.uniform(-scale, scale, bias.shape).astype(np.float32)])


def torch_convs(module) -> list:
    """``(name, Conv2d)`` of a torch module, in registration order."""
    from torch import nn

    return [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]


def copy_weights(generator: KerasGenerator, module) -> list[tuple[str, str]]:
    """Copy the Keras convolutions into the torch ``module`` (a pinn generator), in order.

    Kernel ``(kh, kw, in, out)`` -> ``(out, in, kh, kw)``; bias as is. Returns the
    ``(keras layer, torch module)`` name pairs. Raises ``AssertionError`` when the two networks
    do not have the same number of convolutions or a pair's shapes differ.
    """
    import torch

    targets = torch_convs(module)
    assert len(targets) == len(generator.convs), (
        f"{len(generator.convs)} Keras convolutions but {len(targets)} torch ones")
    pairs = []
    with torch.no_grad():
        for layer, (name, conv) in zip(generator.convs, targets):
            kernel, bias = layer.get_weights()
            kernel = torch.from_numpy(kernel).permute(3, 2, 0, 1)
            assert tuple(kernel.shape) == tuple(conv.weight.shape), (
                f"{layer.name} {tuple(kernel.shape)} vs {name} {tuple(conv.weight.shape)}")
            assert tuple(bias.shape) == tuple(conv.bias.shape), f"bias of {layer.name} vs {name}"
            conv.weight.copy_(kernel)
            conv.bias.copy_(torch.from_numpy(bias))
            pairs.append((layer.name, name))
    return pairs


def trainable_pairs(generator: KerasGenerator) -> list:
    """``[(kernel variable, bias variable)]`` per conv, in creation order."""
    return [(layer.kernel, layer.bias) for layer in generator.convs]


def reference_physics(amp, phase, offsets_xy, probe, scale, padded_size: int,
                      object_big: bool = True, probe_mask: bool = False):
    """The training model after the CNN (§4.8), differentiable w.r.t. ``amp`` and ``phase``.

    Args:
        amp, phase: ``(B, N, N, C_out)`` float32 decoder outputs.
        offsets_xy: ``(B, 1, 2, C)`` ``coords_relative`` (centroid - position, (x, y)).
        probe: ``(N, N)`` complex64, already normalised (§3.5).
        scale: float32 scalar tensor ``exp(log_scale)``.

    Returns:
        ``(trimmed_obj (B, N, N, 1) complex64, pred_amp (B, N, N, C), pred_intensity)``.
    """
    offsets_xy = tf.convert_to_tensor(offsets_xy, tf.float32)
    n, c = amp.shape[1], offsets_xy.shape[3]
    obj = tf.complex(amp * tf.cos(phase), amp * tf.sin(phase))  # CombineComplexLayer, polar
    if object_big:
        canvas, _ = tfr._merge(obj, offsets_xy, padded_size)  # (B, P, P, 1)
    else:
        canvas = tfr._pad_patches(obj, padded_size)
    trimmed = tfr._trim_reconstruction(canvas, n)  # (B, N, N, 1)
    patches = tfr._extract(canvas, offsets_xy, n)  # (B*C, N, N, 1)
    psi, _, _ = tfr._illuminate(patches, tf.convert_to_tensor(probe, tf.complex64), probe_mask)
    pred_amp = scale * tfr._flat_to_channel(tfr._diffract(psi), c)  # IntensityScaler_inv
    return trimmed, pred_amp, tf.square(pred_amp)


def reference_forward(generator: KerasGenerator, x_in, offsets_xy, probe, log_scale,
                      padded_size: int, object_big: bool = True, probe_mask: bool = False):
    """The training model (§4.8): intensity scaler, CNN, then :func:`reference_physics`.

    Args:
        x_in: ``(B, N, N, C)`` float32 ``s * X`` (model input, photon-unit amplitudes).
        log_scale: float32 ``log(s)``.

    Returns:
        ``(amp, phase, trimmed_obj, pred_amp, pred_intensity)``, tensors.
    """
    x_in = tf.convert_to_tensor(x_in, tf.float32)
    scale = tf.exp(tf.convert_to_tensor(log_scale, tf.float32))  # IntensityScaler
    amp, phase = generator.model(x_in / scale, training=True)
    return (amp, phase) + reference_physics(amp, phase, offsets_xy, probe, scale, padded_size,
                                            object_big, probe_mask)


def reference_loss(pred_amp, pred_intensity, x_in, nll_weight: float = 1.0,
                   mae_weight: float = 0.0):
    """The compiled loss (§6): ``nll_w * mean(pred_I - (sX)^2 log pred_I)``
    ``+ mae_w * mean|pred_amp - sX|`` (the realspace term has weight 0 and is the constant 0)."""
    x_in = tf.convert_to_tensor(x_in, tf.float32)
    nll = tf.nn.log_poisson_loss(tf.square(x_in), tf.math.log(pred_intensity),
                                 compute_full_loss=False)
    mae = tf.abs(pred_amp - x_in)
    return nll_weight * tf.reduce_mean(nll) + mae_weight * tf.reduce_mean(mae)

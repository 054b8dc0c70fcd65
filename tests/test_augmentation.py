"""Augmentation layers: outputs against NumPy references (flips, shifts
with every fill mode, rotations, zooms, crops, noise statistics) in both
dtypes, the backward as the exact adjoint of the forward, identity at
inference, reproducibility, saving, ONNX export and bad arguments."""
import numpy as np
import pytest

import nncore
from nncore import (GaussianNoise, RandomCrop, RandomFlip, RandomRotation, RandomTranslation,
                    RandomZoom)


def images(dtype, n=6, h=7, w=9, c=2, seed=0):
    return np.random.default_rng(seed).normal(size=(n, h, w, c)).astype(dtype)


def run(layer, x, dtype, training=True):
    layer.dtype = np.dtype(dtype)
    return layer.forward(x, training=training)


PAD_MODES = {"reflect": "symmetric", "wrap": "wrap", "nearest": "edge", "constant": "constant"}


def shifted(x, dy, dx, fill_mode, fill_value=0.0):
    """x shifted down by dy and right by dx whole pixels, filled as Keras."""
    n, h, w, c = x.shape
    pad = max(abs(dy), abs(dx))
    kwargs = {"constant_values": fill_value} if fill_mode == "constant" else {}
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), PAD_MODES[fill_mode], **kwargs)
    return padded[:, pad - dy:pad - dy + h, pad - dx:pad - dx + w]


def test_random_flip_gives_flipped_or_unchanged_images(dtype):
    x = images(dtype, n=32)
    y = run(RandomFlip("horizontal", seed=1), x, dtype)
    same = [np.array_equal(a, b) for a, b in zip(y, x)]
    flipped = [np.array_equal(a, b[:, ::-1]) for a, b in zip(y, x)]
    assert all(s or f for s, f in zip(same, flipped)) and any(same) and any(flipped)
    y = run(RandomFlip("horizontal_and_vertical", seed=2), x, dtype)
    kinds = set()
    for a, b in zip(y, x):
        for k, ref in enumerate((b, b[:, ::-1], b[::-1], b[::-1, ::-1])):
            if np.array_equal(a, ref):
                kinds.add(k)
                break
        else:
            raise AssertionError("an output is none of the four flips")
    assert kinds == {0, 1, 2, 3}


@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "nearest", "constant"])
def test_random_translation_by_whole_pixels_matches_numpy(dtype, fill_mode):
    x = images(dtype, h=8, w=10)
    layer = RandomTranslation((0.25, 0.25), (-0.3, -0.3), fill_mode=fill_mode, fill_value=0.5)
    y = run(layer, x, dtype)
    np.testing.assert_allclose(y, shifted(x, 2, -3, fill_mode, 0.5), rtol=1e-6, atol=1e-6)


def test_random_rotation_by_a_quarter_turn_is_rot90(dtype):
    x = images(dtype, h=9, w=9)
    y = run(RandomRotation((0.25, 0.25)), x, dtype)
    np.testing.assert_allclose(y, np.rot90(x, k=1, axes=(1, 2)), atol=1e-5)


def bilinear_reference(x, coeffs, fill_mode, fill_value):
    """y[i, j] = x sampled at (c3 j + c4 i + c5, c0 j + c1 i + c2), bilinearly."""
    n, h, w, c = x.shape
    y = np.zeros_like(x, dtype=np.float64)
    pad = h + w
    kwargs = {"constant_values": fill_value} if fill_mode == "constant" else {}
    padded = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)),
                    PAD_MODES[fill_mode], **kwargs)
    for i in range(h):
        for j in range(w):
            sx = coeffs[0] * j + coeffs[1] * i + coeffs[2]
            sy = coeffs[3] * j + coeffs[4] * i + coeffs[5]
            x0, y0 = int(np.floor(sx)), int(np.floor(sy))
            fx, fy = sx - x0, sy - y0
            for (r, q, wt) in ((y0, x0, (1 - fy) * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx),
                               (y0 + 1, x0, fy * (1 - fx)), (y0 + 1, x0 + 1, fy * fx)):
                y[:, i, j] += wt * padded[:, r + pad, q + pad]
    return y


@pytest.mark.parametrize("fill_mode", ["reflect", "constant"])
def test_random_zoom_matches_a_bilinear_reference(dtype, fill_mode):
    x = images(dtype, h=8, w=6)
    y = run(RandomZoom((0.5, 0.5), (-0.25, -0.25), fill_mode=fill_mode, fill_value=-1.0), x,
            dtype)
    cy, cx = 3.5, 2.5               # zoom out 1.5x vertically, in 0.75x horizontally
    coeffs = [0.75, 0, cx - 0.75 * cx, 0, 1.5, cy - 1.5 * cy]
    expected = bilinear_reference(x, coeffs, fill_mode, -1.0)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: RandomFlip(seed=3),
    lambda: RandomTranslation(0.3, 0.2, fill_mode="constant", seed=3),
    lambda: RandomTranslation(0.3, 0.2, fill_mode="reflect", seed=3),
    lambda: RandomRotation(0.2, fill_mode="wrap", seed=3),
    lambda: RandomZoom(0.3, (-0.2, 0.4), fill_mode="nearest", seed=3),
    lambda: RandomRotation(0.5, interpolation="nearest", seed=3),
    lambda: RandomCrop(4, 5, seed=3),
    lambda: GaussianNoise(0.3, seed=3)])
def test_backward_is_the_adjoint_of_the_training_forward(make):
    # every augmentation is x -> A x (+ a constant); its backward must be A^T:
    # <A x1 - A x0, dy> == <x1 - x0, A^T dy> for the same draws
    layer = make()
    layer.dtype = np.dtype("float64")
    x0, x1 = images("float64", seed=1), images("float64", seed=2)
    net = nncore.Network([layer], input_shape=x0.shape[1:], dtype="float64", seed=0)
    state = layer.rng_state.copy()
    y0 = layer.forward(x0, training=True)
    layer.rng_state[:] = state               # the same draws again
    y1 = layer.forward(x1, training=True)
    dy = np.random.default_rng(5).normal(size=y1.shape)
    dx = layer.backward(dy)
    assert dx.shape == x0.shape
    np.testing.assert_allclose(np.sum((y1 - y0) * dy), np.sum((x1 - x0) * dx), rtol=1e-10)
    assert net.layers[0] is layer


def test_inference_passes_inputs_through_and_crop_takes_the_centre(dtype):
    x = images(dtype)
    for layer in (RandomFlip(), RandomTranslation(0.2, 0.2), RandomRotation(0.1),
                  RandomZoom(0.2), GaussianNoise(1.0)):
        np.testing.assert_array_equal(run(layer, x, dtype, training=False), x)
    y = run(RandomCrop(4, 5), x, dtype, training=False)
    np.testing.assert_array_equal(y, x[:, 1:5, 2:7])
    y = run(RandomCrop(4, 5, seed=0), images(dtype, n=40), dtype)
    source = images(dtype, n=40)
    corners = set()
    for a, b in zip(y, source):
        found = [(t, l) for t in range(4) for l in range(5)
                 if np.array_equal(a, b[t:t + 4, l:l + 5])]
        assert len(found) == 1
        corners.add(found[0])
    assert len(corners) > 10


def test_gaussian_noise_statistics(dtype):
    x = np.zeros((50, 40, 30), dtype)
    y = run(GaussianNoise(0.5, seed=4), x, dtype)
    assert abs(y.mean()) < 0.01 and y.std() == pytest.approx(0.5, rel=0.02)
    assert y.dtype == dtype


def test_draws_follow_the_network_seed_and_change_each_step():
    x = images("float32", n=4)

    def outputs(seed):
        net = nncore.Network([RandomRotation(0.2), RandomZoom(0.2)], input_shape=x.shape[1:],
                             seed=seed)
        return [net.layers[1].forward(net.layers[0].forward(x, True), True) for _ in range(2)]
    a, b, c = outputs(1), outputs(1), outputs(2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[0], c[0])
    # sample r's draw depends on (seed, step, r) only, not on the other samples
    layer = RandomRotation(0.2, seed=9)
    first = run(layer, x, "float32")
    layer2 = RandomRotation(0.2, seed=9)
    np.testing.assert_array_equal(run(layer2, x[:2], "float32"), first[:2])


def cnn(seed=0, augment=True):
    layers = ([RandomTranslation(0.1, 0.1), RandomRotation(0.05), RandomZoom(0.1),
               GaussianNoise(0.05)] if augment else []) + [
        nncore.Conv2D(4, 3, activation="relu"), nncore.MaxPool2D(2), nncore.Flatten(),
        nncore.Dense(3)]
    net = nncore.Network(layers, input_shape=(10, 10, 1), seed=seed)
    return net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
                   optimizer="adam")


def test_training_is_reproducible_saved_and_resumed(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 10, 10, 1)).astype("float32")
    y = rng.integers(0, 3, 40)
    a, b = cnn(), cnn()
    a.fit(x, y, epochs=2, batch_size=8, verbose=0)
    b.fit(x, y, epochs=1, batch_size=8, verbose=0)
    b.save(tmp_path / "b.nnc")
    b = nncore.load(tmp_path / "b.nnc")
    assert isinstance(b.layers[1], RandomRotation) and b.layers[1].factor == (-0.05, 0.05)
    b.fit(x, y, epochs=2, initial_epoch=1, batch_size=8, verbose=0)
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)
    with nncore.threads(1):
        c = cnn()
        c.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for p, q in zip(a.get_weights(), c.get_weights()):
        np.testing.assert_array_equal(p, q)
    plain = cnn(augment=False)           # at inference the augmentation layers do nothing
    plain.set_weights([w for layer in a.layers[4:] for w in layer.get_weights()])
    np.testing.assert_array_equal(a.predict(x), plain.predict(x))


def test_onnx_export_leaves_augmentation_out(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = cnn()
    x = np.random.default_rng(1).normal(size=(5, 10, 10, 1)).astype("float32")
    path = tmp_path / "m.onnx"
    nncore.onnx.export(net, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(out, net.predict(x), rtol=1e-4, atol=1e-5)


def test_bad_arguments_name_the_layer():
    with pytest.raises(ValueError, match="RandomFlip: mode must be one of"):
        RandomFlip("diagonal")
    with pytest.raises(ValueError, match="RandomTranslation: height_factor must give"):
        RandomTranslation(1.5, 0.1)
    with pytest.raises(ValueError, match="RandomRotation: fill_mode must be one of"):
        RandomRotation(0.1, fill_mode="mirror")
    with pytest.raises(ValueError, match="RandomZoom: zoom factors must be > -1"):
        RandomZoom((-1.0, 0.2))
    with pytest.raises(ValueError, match="RandomZoom: interpolation"):
        RandomZoom(0.1, interpolation="bicubic")
    with pytest.raises(ValueError, match="GaussianNoise: stddev"):
        GaussianNoise(-0.1)
    with pytest.raises(ValueError, match=r"layer 0 \(RandomCrop\).*at least 8x8"):
        nncore.Network([RandomCrop(8, 8)], input_shape=(5, 5, 1))
    with pytest.raises(ValueError, match=r"RandomFlip.*\(None, height, width, channels\)"):
        nncore.Network([RandomFlip()], input_shape=(5, 5))

"""Morpho-MNIST measures against shapes with known answers, batching, input checks and the split cache."""

import numpy as np
import pytest
import torch

from vae_hub.evaluation import morpho

SS = 16  # supersampling per pixel when rendering shapes: anti-aliased edges, as a scanned stroke has


def render(inside) -> np.ndarray:
    """A 28x28 uint8 image whose pixels hold the covered fraction of the region ``inside(x, y)`` (pixel units,
    y down, pixel i spans [i, i + 1))."""
    c = (np.arange(28 * SS) + 0.5) / SS
    ink = inside(c[None, :], c[:, None])
    return np.round(255 * ink.reshape(28, SS, 28, SS).mean((1, 3))).astype(np.uint8)


def bar(width: float, height: float = 20, angle: float = 0.0) -> np.ndarray:
    """A bar of horizontal width ``width`` sheared so that its top leans right by ``angle`` degrees."""
    def inside(x, y):
        xc = 14 + np.tan(np.radians(angle)) * (14 - y)
        return (np.abs(x - xc) <= width / 2) & (np.abs(y - 14) <= height / 2)
    return render(inside)


def box(w: float, h: float) -> np.ndarray:
    return render(lambda x, y: (np.abs(x - 14) <= w / 2) & (np.abs(y - 14) <= h / 2))


def col(name: str) -> int:
    return morpho.FACTORS.index(name)


@pytest.mark.parametrize("width", [2.0, 2.5, 3.0, 4.0, 5.5])
def test_vertical_bar_thickness(width):
    m = morpho.measure(bar(width))[0]
    assert abs(m[col("thickness")] - width) <= 0.3
    assert abs(m[col("slant")]) < 0.5
    assert abs(m[col("area")] - 20 * width) <= 0.05 * 20 * width


@pytest.mark.parametrize("angle", [-30.0, -15.0, 8.0, 20.0, 35.0])
def test_sheared_bar_slant(angle):
    m = morpho.measure(bar(3.0, 18, angle))[0]
    assert abs(m[col("slant")] - angle) <= 2.0  # positive: the top leans right
    # the stroke's own thickness is the horizontal width times cos(angle)
    assert abs(m[col("thickness")] - 3.0 * np.cos(np.radians(angle))) <= 0.3


@pytest.mark.parametrize("w,h", [(12, 18), (18, 10), (10, 16)])
def test_box_width_height(w, h):
    m = morpho.measure(box(w, h))[0]
    # the mass-based extents (98% of the grey mass) of an upscaled box land within half a pixel of its sides
    assert abs(m[col("width")] - w) <= 0.5
    assert abs(m[col("height")] - h) <= 0.5
    assert abs(m[col("slant")]) < 0.5


def test_bar_length_is_its_centre_line():
    m = morpho.measure(bar(2.0, 20))[0]
    assert 20 - 2 - 1 <= m[col("length")] <= 20  # a thinned bar ends about half a width inside each end


def test_batch_matches_single_images_and_input_forms():
    # neighbours in a mosaic must not touch: include a stroke on the image border
    edge = np.zeros((28, 28), np.uint8)
    edge[3:25, 0:3] = 255
    imgs = np.stack([bar(3.0), edge, box(12, 18), bar(2.5, 18, 20.0)])
    batch = morpho.measure(imgs)
    assert batch.shape == (4, len(morpho.FACTORS)) and batch.dtype == np.float64
    for i, img in enumerate(imgs):
        np.testing.assert_allclose(morpho.measure(img)[0], batch[i], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(morpho.measure(imgs[:, None] / 255.0), batch, atol=1e-9)  # scale-free, (N, 1, 28, 28)
    np.testing.assert_allclose(morpho.measure(torch.from_numpy(imgs)), batch, atol=1e-9)
    d = morpho.measure_dict(imgs[0])
    assert list(d) == list(morpho.FACTORS) and d["thickness"] == pytest.approx(batch[0, 0])


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 32, 32)), "28x28"),
    (np.zeros((2, 3, 28, 28)), "28x28"),
    (np.zeros((28, 28)), "no ink"),
    (np.full((28, 28), np.nan), "NaN"),
    (np.array([["a"] * 28] * 28), "dtype"),
])
def test_bad_images_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        morpho.measure(bad)


def test_mnist_digits_measure_plausibly(mini):
    _, test = mini
    f = morpho.measure(test.images[:300])
    labels = test.labels[:300].numpy()
    assert np.isfinite(f).all()
    assert 1.0 < np.median(f[:, col("thickness")]) < 4.5
    assert 15 < np.median(f[:, col("height")]) < 22  # MNIST digits are scaled into a 20-pixel box
    # ones are the narrowest digits, zeros among the widest and longest-stroked
    w = f[:, col("width")]
    assert np.median(w[labels == 1]) + 5 < np.median(w[labels == 0])


def test_split_factors_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_HUB_CACHE", str(tmp_path))
    imgs = np.stack([bar(3.0), box(12, 18)])[:, None]
    first = morpho.split_factors(imgs)
    path = morpho.cache_path(imgs)
    assert path.is_file()
    with np.load(path, allow_pickle=False) as z:  # no pickle on the load path
        assert z["factors_names"].tolist() == list(morpho.FACTORS)

    def fail(_):
        raise AssertionError("measured again instead of reading the cache")

    monkeypatch.setattr(morpho, "measure", fail)
    np.testing.assert_array_equal(morpho.split_factors(imgs), first)
    monkeypatch.undo()
    monkeypatch.setenv("VAE_HUB_CACHE", str(tmp_path))
    path.write_bytes(b"damaged")
    np.testing.assert_array_equal(morpho.split_factors(imgs), first)  # rebuilt, not trusted
    other = imgs.copy()
    other[0, 0, 14, 14] ^= 1
    assert morpho.cache_path(other) != path  # keyed by the pixels
    with pytest.raises(ValueError, match="uint8"):
        morpho.fingerprint(imgs.astype(np.float32))


@pytest.mark.parametrize("damage", [
    lambda b: b"",  # zero bytes: EOFError
    lambda b: b[: len(b) // 10],  # 90% cut off: BadZipFile
    lambda b: b[:-200] + bytes([b[-200] ^ 0x40]) + b[-199:],  # a flipped bit in the zip directory
    lambda b: b[:300] + bytes([b[300] ^ 0x01]) + b[301:],  # a flipped bit in the data: a bad CRC
], ids=["empty", "truncated", "flipped-directory", "flipped-data"])
def test_a_damaged_split_cache_is_rebuilt(tmp_path, monkeypatch, damage):
    """Whatever numpy or zipfile raises for a damaged .npz, the measures are computed again and the file rewritten."""
    monkeypatch.setenv("VAE_HUB_CACHE", str(tmp_path))
    imgs = np.stack([bar(3.0), box(12, 18), bar(5.0, angle=15.0)])[:, None]
    first = morpho.split_factors(imgs)
    path = morpho.cache_path(imgs)
    good = path.read_bytes()
    path.write_bytes(damage(good))
    np.testing.assert_array_equal(morpho.split_factors(imgs), first)
    assert path.read_bytes() == good, "rewritten"


def test_an_unwritable_split_cache_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_HUB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").write_text("a file where the cache folder should be")  # every write fails
    imgs = np.stack([bar(3.0), box(12, 18)])[:, None]
    assert morpho.split_factors(imgs).shape == (2, len(morpho.FACTORS))

"""Morphometry of handwritten digits: stroke thickness, slant, width, height, length and area per image.

Follows Morpho-MNIST (Castro, Tan, Kainz, Konukoglu & Glocker, "Morpho-MNIST: Quantitative Assessment
and Diagnostics for Representation Learning", JMLR 2019; arXiv:1809.10780), Section 3.1:

1. Each 28x28 digit is zero-padded by ``PAD`` pixels (so strokes touching the border end there) and
   upscaled ``SCALE`` = 4 times with ``skimage.transform.pyramid_expand`` (bicubic, Gaussian-smoothed),
   as the paper does for sub-pixel precision. Every length below is converted back to 28x28 pixels.
2. Binarised at half way between the upscaled image's minimum and maximum (``THRESHOLD`` = 0.5).
3. Skeleton by morphological thinning (``skimage.morphology.skeletonize``; the paper's code uses the
   medial axis, the issue asks for thinning; both give one-pixel centre lines).
4. **thickness** = 2 x the mean Euclidean distance transform (``scipy.ndimage.distance_transform_edt``,
   distance to the nearest background pixel) over the skeleton pixels: the stroke's mean full width.
5. **length** = length of the skeleton: every 8-connected link between skeleton pixels counted once,
   1 for horizontal/vertical links and sqrt(2) for diagonal ones (the paper's correlation mask).
6. **slant** = arctan(-mu11 / mu02) from the second-order central moments of the upscaled grey image:
   -mu11 / mu02 is the horizontal shear x' = x + s (y - y_c) that leaves x' uncorrelated with y, i.e.
   the shear that minimises the second moment along x. Reported in **degrees**; positive = the top
   leans right (image rows grow downwards).
7. **width**, **height**: the bounding parallelogram of the de-slanted digit, as the paper's code does:
   the extents between the ``BOUND_FRAC``/2 and 1 - ``BOUND_FRAC``/2 quantiles of the grey mass along the
   sheared horizontal axis (width) and along the vertical axis (height), each mass CDF evaluated at
   whole pixels and interpolated linearly. Because the upscaling blurs the edges and 1% of a small shape's
   mass is little, short extents read long: a box of side 16 measures ~16.2, of side 10 ~10.5, and a
   3-pixel-wide bar ~4.7 wide (tests/test_morpho.py pins boxes of 10 px and more to within 0.5 px).
8. **area** = number of binarised pixels / SCALE^2.

``measure(images)`` takes any batch of 28x28 digits (uint8 0..255 or float; the measures do not depend
on the intensity scale) and returns a float64 array (N, 6) in the order of ``FACTORS``. Images are
processed as vertical mosaics (thinning and the distance transform are local, and the zero padding keeps
neighbouring digits apart), so a batch costs a few milliseconds per digit and one drawing well under 50 ms.
``split_factors`` caches the measures of a whole split under ``VAE_HUB_CACHE`` as an ``.npz`` keyed by a
fingerprint of the split's pixels and of these settings, loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import morphology, transform

from vae_hub.data.mnist import cache_dir
from vae_hub.files.tensors import atomic_path

FACTORS = ("thickness", "slant", "width", "height", "length", "area")
UNITS = {"thickness": "px", "slant": "°", "width": "px", "height": "px", "length": "px", "area": "px²"}
SCALE = 4
THRESHOLD = 0.5
BOUND_FRAC = 0.02
PAD = 2  # low-res pixels of zeros around each digit before upscaling
CHUNK = 500  # digits per mosaic: bounds memory (a 500-digit mosaic of float64 is ~65 MB)
VERSION = 1  # bump when a definition changes, so cached measures are recomputed
# skeleton links counted once each: right, down-left, down, down-right (Morpho-MNIST's mask)
_LINKS = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [np.sqrt(2.0), 1.0, np.sqrt(2.0)]])


def _as_batch(images) -> np.ndarray:
    """(28, 28), (N, 28, 28) or (N, 1, 28, 28) array-like -> float64 (N, 28, 28), with clear errors."""
    a = np.asarray(images)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    elif a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1:] != (28, 28):
        raise ValueError(f"images have shape {np.shape(images)}; expected 28x28 digits as (28, 28), (N, 28, 28) "
                         "or (N, 1, 28, 28)")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"images have dtype {a.dtype}; expected numbers (uint8 0..255 or float)")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError("images contain NaN or infinite values")
    blank = np.flatnonzero(a.max((1, 2)) <= a.min((1, 2)))
    if len(blank):
        raise ValueError(f"image(s) {blank[:10].tolist()} have no ink (constant); expected digits with strokes")
    return a


def _measure_chunk(x: np.ndarray) -> np.ndarray:
    n = len(x)
    x = np.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD)))
    # one 2-D call per digit: as channels of one call the cubic spline would also run along the batch axis
    hi = np.stack([transform.pyramid_expand(d, upscale=SCALE, order=3, preserve_range=True) for d in x])
    side = hi.shape[1]
    lo, top = hi.min((1, 2), keepdims=True), hi.max((1, 2), keepdims=True)
    binary = hi >= lo + (top - lo) * THRESHOLD

    mosaic = binary.reshape(n * side, side)  # digits stacked vertically, kept apart by the zero padding
    skel = morphology.skeletonize(mosaic)
    dist = ndimage.distance_transform_edt(mosaic)
    links = ndimage.correlate(skel.astype(np.float64), _LINKS, mode="constant") * skel
    skel, dist, links = (a.reshape(n, side, side) for a in (skel, dist, links))
    n_skel = skel.sum((1, 2))
    thickness = 2 * (dist * skel).sum((1, 2)) / np.maximum(n_skel, 1) / SCALE
    length = links.sum((1, 2)) / SCALE
    area = binary.sum((1, 2)) / SCALE**2

    # moments of the grey upscaled image
    w = np.clip(hi, 0, None)  # bicubic overshoot below zero is not ink
    mass = w.sum((1, 2))
    ys, xs = np.arange(side, dtype=np.float64), np.arange(side, dtype=np.float64)
    row, col = w.sum(2) / mass[:, None], w.sum(1) / mass[:, None]  # marginals over y and x
    yc, xc = row @ ys, col @ xs
    mu02 = row @ ys**2 - yc**2
    mu11 = np.einsum("nij,i,j->n", w, ys, xs) / mass - xc * yc
    shear = mu11 / mu02  # x' = x - shear (y - yc) is uncorrelated with y
    slant = np.degrees(np.arctan(-shear))

    # height: vertical mass CDF at whole pixels, P(y < t), t = 0..side
    t = np.arange(side + 1, dtype=np.float64)
    vcdf = np.concatenate([np.zeros((n, 1)), np.cumsum(row, 1)], 1)
    # width: mass CDF along the de-slanted axis u = x + 1/2 - shear (y - yc); P(u < t) = P(floor(u) < t)
    u = np.floor(xs[None, None, :] + 0.5 - shear[:, None, None] * (ys[None, :, None] - yc[:, None, None]))
    u_lo = int(u.min())
    nb = int(u.max()) - u_lo + 2
    bins = (u - u_lo).astype(np.int64) + nb * np.arange(n)[:, None, None]
    hist = np.bincount(bins.ravel(), weights=(w / mass[:, None, None]).ravel(), minlength=n * nb).reshape(n, nb)
    hcdf = np.concatenate([np.zeros((n, 1)), np.cumsum(hist, 1)[:, :-1]], 1)
    ht = np.arange(nb, dtype=np.float64) + u_lo
    q = [BOUND_FRAC / 2, 1 - BOUND_FRAC / 2]
    width = np.array([np.diff(np.interp(q, hcdf[i], ht))[0] for i in range(n)]) / SCALE
    height = np.array([np.diff(np.interp(q, vcdf[i], t))[0] for i in range(n)]) / SCALE
    return np.stack([thickness, slant, width, height, length, area], 1)


def measure(images) -> np.ndarray:
    """Morpho-MNIST measures of a batch of 28x28 digits: float64 (N, 6), columns in ``FACTORS`` order
    (thickness, width, height, length in 28x28 pixels; slant in degrees; area in square pixels)."""
    x = _as_batch(images)
    return np.concatenate([_measure_chunk(x[i:i + CHUNK]) for i in range(0, len(x), CHUNK)])


def measure_dict(image) -> dict[str, float]:
    """One digit's measures by name, e.g. for showing a drawing's own thickness and slant."""
    return dict(zip(FACTORS, measure(image)[0].tolist(), strict=True))


# ---------------------------------------------------------------------------- cache
def settings() -> dict:
    return {"version": VERSION, "scale": SCALE, "threshold": THRESHOLD, "bound_frac": BOUND_FRAC, "pad": PAD,
            "factors": list(FACTORS)}


def fingerprint(images) -> str:
    """The split's fingerprint: sha256 of its uint8 pixels (shape included) and of the measurement settings."""
    a = np.ascontiguousarray(np.asarray(images))
    if a.dtype != np.uint8:
        raise ValueError(f"fingerprint expects the split's uint8 images, got dtype {a.dtype}")
    h = hashlib.sha256(json.dumps(settings(), sort_keys=True).encode())
    h.update(repr(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()[:24]


def cache_path(images) -> Path:
    return cache_dir() / f"morpho-{fingerprint(images)}.npz"


def split_factors(images, use_cache: bool = True) -> np.ndarray:
    """``measure`` of a whole split (uint8 (N, 1, 28, 28), e.g. ``Split.images``), computed once and cached.
    A cache file that cannot be read whole (empty, truncated, bit-flipped: whatever numpy or zipfile raises) or
    holds another shape is deleted and rebuilt; a cache that cannot be written is skipped."""
    arr = np.asarray(images)
    path = cache_path(arr)
    if use_cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                factors, names = z["factors"], z["factors_names"].tolist()
            if (names == list(FACTORS) and factors.shape == (len(arr), len(FACTORS))
                    and np.issubdtype(factors.dtype, np.floating)):
                return factors
        except Exception:  # EOFError, zipfile.BadZipFile (a bad CRC), zlib.error, ValueError, OSError, ...
            pass
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)  # a damaged or stale cache is rebuilt, never trusted
    factors = measure(arr)
    if use_cache:
        # a file object: given a name, np.savez would add ".npz" to the temporary one
        with contextlib.suppress(OSError), atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, factors=factors, factors_names=np.array(FACTORS), settings=json.dumps(settings()))
    return factors  # a read-only or full disk costs the cache, not the measures

"""Turn a drawing (or an uploaded image) into an MNIST-style 28×28 input, the way MNIST itself was made.

This docstring is the one specification of the rules. space/vae_space/web/preprocess.js ports them to
the browser line by line (for canvas pixels: RGBA, at most WORK_SIDE a side) and
tests/test_preprocess_parity.py checks that both give the same 28×28 for the same pixels.

MNIST digits were size-normalised to fit a 20×20 box keeping their aspect ratio (anti-aliased), then
centred in a 28×28 field by their centre of mass. ``to_mnist(image) = ink_to_mnist(ink_map(image))``
does the same to any image, finding the ink whatever the polarity (dark strokes on white, white on
black, strokes on a transparent background) and evening out the stroke width so that a thin pen on a
big canvas looks like MNIST's pen.

``ink_map``: image -> ink in [0, 1], (H, W) float32
  1. Pixels become float32 0-255 (``as_array``); an image over WORK_SIDE px a side is box-reduced first.
  2. Luminance = 0.299 R + 0.587 G + 0.114 B. With alpha (a = alpha / 255): max a < 0.1 is an empty
     canvas; more than half opaque (a > 0.5) with the opaque luminance flat (std < 20) and dark
     (mean < 128) is "nearly all ink"; otherwise the image is composited onto white if the strokes'
     a-weighted mean luminance is < 128 (a dark pen on a transparent pad), else onto black.
  3. Background = median of the border ring, round(3 % of the short side) px wide (at least 1); if more
     than a quarter of the ring is over 25 from it, the image is a photo and is refused.
  4. diff = distance from the background (bg - lum if bg >= 128, else lum - bg). Contrast = its
     99.5th percentile (over diff[::2, ::2] when the image has over 40 000 px; diff's maximum when
     that sample has ≤ 400), at least half of diff's maximum; contrast < 30 is an empty canvas.
     ink = clip(diff / contrast, 0, 1), then clip((ink - 0.1) / 0.9, 0, 1) drops paper texture.

``ink_to_mnist``: ink map -> (28, 28) float32 in [0, 1], white digit on black
  5. Strokes = ink > 0.25: none is an empty canvas, over half the pixels is "nearly all ink". Crop to
     the strokes' bounding box; a long side under max(4, 8 % of the image's long side) is only a dot.
  6. Resize the crop, aspect kept, so its long side is MID = 80 (each side round(side · 80 / long
     side), at least 1) by area resampling (``_resize``).
  7. Stretch: divide by max(75th percentile of the pixels > 0.05, 0.05), clip to 1 (a thin pen's
     averaged grey reads as MNIST's saturated stroke).
  8. Stroke width w = 2 · area / perimeter of the pixels > 0.5 (perimeter: those with a 4-neighbour
     outside; ``_stroke_width``). grow = round(TARGET_WIDTH - w); if grow >= 2, pad by s = grow
     (made odd: grow + 1 if even) zeros each side, grey-dilate with an s×s square (``_dilate``) and
     crop to the pixels > 0.02. A thick pen is never thinned.
  9. Area-resample so the long side is FIT = 20 (each side round(side · 20 / long side), at least 1);
     divide by the maximum (a maximum ≤ 0 is an empty canvas) and clip to 1.
 10. Centre of mass (cy, cx) in pixel indices; paste at top = round(14 - cy), left = round(14 - cx),
     each clamped so the digit stays inside 28×28; zeros elsewhere.

Arithmetic, which a port copies to agree to float precision (not just to the eye):
  - Arrays are float32 and so is arithmetic with a Python scalar (numpy rounds the scalar to float32
    first), comparisons included: ``ink > 0.05`` compares against float32(0.05). Scalars that only
    pick a size or a branch (scale factors, stroke width, contrast before it divides) are float64.
  - round() is half-to-even (Python's and numpy's).
  - Percentiles are numpy's default "linear": v sorted, i = (n - 1) · q in float64, j = floor(i),
    g = i - j; in float32, d = v[j+1] - v[j], result v[j] + d · g, or v[j+1] - d · (1 - g) when
    g >= 0.5; i >= n - 1 gives v[n - 1]. A median of an even count is (a + b) / 2 in float32.
  - Area resampling (``_area_weights``, ``_resize``): output pixel i of n covers [i·m/n, (i+1)·m/n)
    of the m input pixels, each weighted by its overlap / the box's length; float64, the horizontal
    pass then the vertical, each a sum over taps in order from 0, rounded to float32 at the end.
  - Centres of mass are float64 running sums in index order (``_mass_centre``).
  - The stroke-colour and all-ink tests of step 2 are branch decisions only; a port may compute
    them in float64 in any order.

Inputs that cannot be read as one digit raise ``DrawingError`` with a short message meant for users.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MAX_PIXELS = 4096 * 4096  # anything larger is refused rather than decoded into memory
WORK_SIDE = 300  # larger images are box-downscaled to about this first: the digit ends up 80 px anyway
FIT = 20  # MNIST's box for the digit
SIDE = 28
CENTRE = 14.0  # MNIST test digits' mean centre of mass, in pixel-index coordinates
MID = 80  # intermediate resolution for stroke-width normalisation (4 × FIT)
TARGET_WIDTH = 2.7 * MID / FIT  # MNIST stroke width (2·area/perimeter of ink > 0.5) is ~2.7 px at 20 px


class DrawingError(ValueError):
    """The input is not a usable drawing; the message is short and meant for the user."""


def as_array(image: object) -> np.ndarray:
    """PIL image or array -> float32 array (H, W, C), C in {1, 3, 4}, values 0-255, at most about
    WORK_SIDE pixels on a side (larger images are box-downscaled first, in uint8, to save memory)."""
    if isinstance(image, Image.Image):
        if image.width * image.height > MAX_PIXELS:
            raise DrawingError(f"Image too large ({image.width}×{image.height}); the limit is 4096×4096.")
        if image.mode not in ("L", "LA", "RGB", "RGBA"):
            image = image.convert("RGBA" if "transparency" in image.info or "A" in image.getbands() else "RGB")
        f = int(np.ceil(max(image.size) / WORK_SIDE))
        image = np.asarray(image.reduce(f) if f > 1 else image)
    if not isinstance(image, np.ndarray):
        raise DrawingError(f"Expected an image, got {type(image).__name__}.")
    arr = image[:, :, None] if image.ndim == 2 else image
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.size == 0:
        raise DrawingError(f"Expected an image array (H, W[, C]), got shape {tuple(image.shape)}.")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise DrawingError(f"Image too large ({arr.shape[1]}×{arr.shape[0]}); the limit is 4096×4096.")
    if min(arr.shape[:2]) < 8:
        raise DrawingError(f"Image too small ({arr.shape[1]}×{arr.shape[0]}); draw on the pad or send at least 8×8.")
    if arr.dtype == np.uint8:  # what Gradio hands over: no range checks needed
        f = int(np.ceil(max(arr.shape[:2]) / WORK_SIDE))
        if f > 1:
            mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
            arr = np.asarray(Image.fromarray(np.ascontiguousarray(arr.squeeze(2) if mode == "L" else arr), mode).reduce(f))
            arr = arr[:, :, None] if arr.ndim == 2 else arr
        arr = arr.astype(np.float32)
    else:
        if arr.dtype == bool:
            arr = arr.astype(np.float32) * 255
        elif arr.dtype.kind == "f":
            if not np.isfinite(arr).all():
                raise DrawingError("The image contains NaN or infinite values.")
            arr = arr.astype(np.float32) * (255.0 if arr.max(initial=0) <= 1.0 else 1.0)
        elif arr.dtype.kind in "ui":
            arr = arr.astype(np.float32) * (255.0 / 65535 if arr.max(initial=0) > 255 else 1.0)
        else:
            raise DrawingError(f"Unsupported pixel type {arr.dtype}.")
        arr = _downscale(np.clip(arr, 0, 255))
    if arr.shape[2] == 2:  # grey + alpha
        arr = np.concatenate([arr[:, :, :1].repeat(3, 2), arr[:, :, 1:]], 2)
    return arr


def _downscale(arr: np.ndarray) -> np.ndarray:
    """Box-average big float images down to about WORK_SIDE so a 4k image costs as much as a sketch."""
    f = int(np.ceil(max(arr.shape[:2]) / WORK_SIDE))
    if f <= 1:
        return arr
    h, w = arr.shape[0] // f * f, arr.shape[1] // f * f
    return arr[:h, :w].reshape(h // f, f, w // f, f, arr.shape[2]).mean((1, 3), dtype=np.float32)


def ink_map(image: object) -> np.ndarray:
    """Where the ink is, in [0, 1] (H, W) float32, whatever the polarity and transparency of the input:
    steps 1-4 of the module docstring."""
    arr = as_array(image)
    rgb = arr[:, :, :3] if arr.shape[2] >= 3 else arr[:, :, :1].repeat(3, 2)
    lum = rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114  # 2. float32, in this order
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3] / 255.0
        if alpha.max() < 0.1:
            raise DrawingError("Draw a digit first: the canvas is empty.")
        # Composite onto whichever of black/white contrasts with the strokes: dark pen on a
        # transparent canvas (the sketchpad) goes onto white, white strokes go onto black.
        stroke_lum = float((lum * alpha).sum() / alpha.sum())
        opaque = alpha > 0.5
        if opaque.mean() > 0.5 and float(lum[opaque].std()) < 20 and float(lum[opaque].mean()) < 128:
            # the (dark) pen painted over most of the canvas
            raise DrawingError("The canvas is nearly all ink: clear it and draw one digit.")
        bg_value = 255.0 if stroke_lum < 128 else 0.0
        lum = lum * alpha + bg_value * (1 - alpha)
    h, w = lum.shape  # 3. the background, and the photo test
    ring = max(1, round(0.03 * min(h, w)))
    border = np.concatenate([lum[:ring].ravel(), lum[-ring:].ravel(), lum[:, :ring].ravel(), lum[:, -ring:].ravel()])
    bg = float(np.median(border))
    if np.mean(np.abs(border - bg) > 25) > 0.25:  # a drawing's border is flat; a photo's is not
        raise DrawingError("This looks like a photo, not a drawing: draw a digit, or send a digit on a plain background.")
    # 4. Normalise by the stroke contrast so a grey pencil reads like MNIST's saturated pen.
    diff = (bg - lum) if bg >= 128 else (lum - bg)
    sub = diff[::2, ::2] if diff.size > 40000 else diff  # a subsample is plenty for a percentile
    contrast = float(np.percentile(sub, 99.5)) if sub.size > 400 else float(diff.max())
    contrast = max(contrast, float(diff.max()) * 0.5)
    if contrast < 30:
        raise DrawingError("Draw a digit first: the canvas is empty.")
    ink = np.clip(diff / contrast, 0, 1)
    return np.clip((ink - 0.1) / 0.9, 0, 1)  # drop paper texture and compression noise


def _stroke_width(mask: np.ndarray) -> float:
    """2 · area / perimeter: the width of long thin strokes, cheaply."""
    p = np.pad(mask, 1)
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    perimeter = int((mask & ~inner).sum())
    return 2.0 * int(mask.sum()) / max(perimeter, 1)


def _dilate(a: np.ndarray, size: int) -> np.ndarray:
    """Grey dilation with a size×size square, separably: max over shifted copies, rows then columns."""
    r = size // 2
    out = a.copy()
    for s in range(1, r + 1):
        out[s:] = np.maximum(out[s:], a[:-s])
        out[:-s] = np.maximum(out[:-s], a[s:])
    rows = out.copy()
    for s in range(1, r + 1):
        out[:, s:] = np.maximum(out[:, s:], rows[:, :-s])
        out[:, :-s] = np.maximum(out[:, :-s], rows[:, s:])
    return out


def _area_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Area resampling of n_in pixels to n_out: output pixel i covers [i·n_in/n_out, (i+1)·n_in/n_out)
    of the input, and each input pixel it overlaps counts by overlap / box length. Returns (index,
    weight), both (taps, n_out): tap k of output i is input pixel first(i) + k (weight 0 past the box;
    the index is clamped, and only ever read with weight 0)."""
    lo = np.arange(n_out) * n_in / n_out
    hi = np.arange(1, n_out + 1) * n_in / n_out
    first = np.floor(lo).astype(np.int64)
    taps = int((np.ceil(hi) - first).max())
    j = first + np.arange(taps)[:, None]
    weight = np.maximum(np.minimum(hi, j + 1) - np.maximum(lo, j), 0) / (hi - lo)
    return np.minimum(j, n_in - 1), weight


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    """(H, W) -> (h, w) float32 by exact area resampling (an anti-aliased shrink; an enlargement blends
    only across the pixel edges it straddles): float64, the horizontal pass then the vertical, taps
    summed in order, so that a port can repeat it to the last bit."""
    xi, xw = _area_weights(a.shape[1], w)
    yi, yw = _area_weights(a.shape[0], h)
    a = a.astype(np.float64)
    rows = np.zeros((a.shape[0], w))
    for k in range(len(xi)):
        rows += a[:, xi[k]] * xw[k]
    out = np.zeros((h, w))
    for k in range(len(yi)):
        out += rows[yi[k]] * yw[k][:, None]
    return out.astype(np.float32)


def _mass_centre(a: np.ndarray) -> tuple[float, float]:
    """(cy, cx) of a non-negative (h, w) image with a positive sum, in pixel indices: float64 running
    sums in index order (cumsum adds left to right, unlike sum's pairwise order)."""
    m = a.astype(np.float64)
    rows, cols = np.cumsum(m, 1)[:, -1], np.cumsum(m, 0)[-1]  # Σ over x of each row, Σ over y of each column
    total = float(np.cumsum(rows)[-1])
    cy = float(np.cumsum(rows * np.arange(a.shape[0]))[-1]) / total
    cx = float(np.cumsum(cols * np.arange(a.shape[1]))[-1]) / total
    return cy, cx


def to_mnist(image: object) -> np.ndarray:
    """Any drawing or image -> (28, 28) float32 in [0, 1], white digit on black, MNIST-style."""
    return ink_to_mnist(ink_map(image))


def ink_to_mnist(ink: np.ndarray) -> np.ndarray:
    """An ink map ((H, W) float32 in [0, 1], as ``ink_map`` makes) -> (28, 28) float32 in [0, 1], white
    digit on black: steps 5-10 of the module docstring."""
    ink = np.asarray(ink, np.float32)
    mask = ink > 0.25  # 5. the strokes, their bounding box
    if not mask.any():
        raise DrawingError("Draw a digit first: the canvas is empty.")
    if mask.mean() > 0.5:
        raise DrawingError("The canvas is nearly all ink: clear it and draw one digit.")
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    long_side = max(y1 - y0, x1 - x0)
    if long_side < max(4, 0.08 * max(ink.shape)):
        raise DrawingError("That is only a dot: draw a whole digit, filling most of the pad.")
    crop = ink[y0:y1, x0:x1]
    # 6. bounding box -> long side MID, aspect kept
    scale = MID / long_side
    mh, mw = max(1, round((y1 - y0) * scale)), max(1, round((x1 - x0) * scale))
    mid = _resize(crop, mw, mh)
    # 7. a thin pen averages out grey: stretch so that most of the stroke is saturated, as in MNIST
    strokes = mid[mid > 0.05]
    if strokes.size:
        mid = np.clip(mid / max(float(np.percentile(strokes, 75)), 0.05), 0, 1)
    # 8. thicken thin pens to MNIST's stroke width (a grey dilation), never thin thick ones
    grow = int(round(TARGET_WIDTH - _stroke_width(mid > 0.5)))
    if grow >= 2:
        size = grow + 1 if grow % 2 == 0 else grow
        mid = _dilate(np.pad(mid, size), size)
        r, c = np.flatnonzero((mid > 0.02).any(1)), np.flatnonzero((mid > 0.02).any(0))
        mid = mid[r[0]:r[-1] + 1, c[0]:c[-1] + 1]
    mh, mw = mid.shape
    fit = FIT / max(mh, mw)
    # 9. anti-aliased fit into 20×20 (area resampling), peak ink at 1 like MNIST's saturated strokes
    small = _resize(mid, max(1, round(mw * fit)), max(1, round(mh * fit)))
    peak = small.max()
    if peak <= 0:
        raise DrawingError("Draw a digit first: the canvas is empty.")
    small = np.clip(small / peak, 0, 1)
    # 10. centre of mass to (14, 14), kept inside the field
    h, w = small.shape
    cy, cx = _mass_centre(small)
    top = int(np.clip(round(CENTRE - cy), 0, SIDE - h))
    left = int(np.clip(round(CENTRE - cx), 0, SIDE - w))
    out = np.zeros((SIDE, SIDE), np.float32)
    out[top:top + h, left:left + w] = small
    return out


def sketch_image(value: object) -> object:
    """The image inside a Gradio ImageEditor/Sketchpad value ({'background', 'layers', 'composite'}).

    The composite is what the user sees; without one, the layers are stacked on the background.
    A bare image (array or PIL) is returned as is.
    """
    if value is None:
        raise DrawingError("Draw a digit first: the canvas is empty.")
    if not isinstance(value, dict):
        return value
    unknown = set(value) - {"background", "layers", "composite", "id"}
    if unknown:
        raise DrawingError(f"Expected a sketchpad value with background/layers/composite, got keys {sorted(unknown)}.")
    if value.get("composite") is not None:
        return value["composite"]
    layers = [x for x in (value.get("layers") or []) if x is not None]
    base = value.get("background")
    if base is None and not layers:
        raise DrawingError("Draw a digit first: the canvas is empty.")
    stack = [as_array(x) for x in ([base] if base is not None else []) + layers]
    h, w = stack[0].shape[:2]
    out = np.zeros((h, w, 4), np.float32)
    for a in stack:  # "over" compositing, straight alpha
        if a.shape[:2] != (h, w):
            raise DrawingError("The sketchpad layers have different sizes.")
        rgb = a[:, :, :3] if a.shape[2] >= 3 else a[:, :, :1].repeat(3, 2)
        al = a[:, :, 3:4] / 255.0 if a.shape[2] == 4 else np.ones((h, w, 1), np.float32)
        out[:, :, :3] = rgb * al + out[:, :, :3] * (1 - al)
        out[:, :, 3:] = 255 * al + out[:, :, 3:] * (1 - al)
    return out


# Pen strokes of each digit in unit coordinates (x right, y down), as a person might draw them:
# synthetic drawings for tests, benchmarks and browser automation.
DIGIT_STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [[(0.5, 0.1), (0.3, 0.2), (0.22, 0.5), (0.3, 0.8), (0.5, 0.9), (0.7, 0.8), (0.78, 0.5), (0.7, 0.2), (0.5, 0.1)]],
    1: [[(0.4, 0.25), (0.55, 0.1), (0.55, 0.9)]],
    2: [[(0.25, 0.28), (0.4, 0.12), (0.62, 0.12), (0.74, 0.3), (0.65, 0.5), (0.25, 0.88), (0.78, 0.88)]],
    3: [[(0.25, 0.15), (0.7, 0.15), (0.45, 0.45), (0.7, 0.6), (0.68, 0.82), (0.45, 0.9), (0.25, 0.82)]],
    4: [[(0.6, 0.9), (0.6, 0.1), (0.2, 0.65), (0.8, 0.65)]],
    5: [[(0.72, 0.12), (0.32, 0.12), (0.28, 0.45), (0.55, 0.42), (0.72, 0.6), (0.65, 0.85), (0.28, 0.85)]],
    6: [[(0.65, 0.1), (0.38, 0.35), (0.28, 0.65), (0.4, 0.88), (0.62, 0.85), (0.7, 0.65), (0.55, 0.5), (0.3, 0.6)]],
    7: [[(0.22, 0.15), (0.78, 0.15), (0.42, 0.9)], [(0.35, 0.5), (0.7, 0.5)]],
    8: [[(0.5, 0.5), (0.3, 0.32), (0.5, 0.12), (0.7, 0.32), (0.5, 0.5), (0.28, 0.7), (0.5, 0.9), (0.72, 0.7), (0.5, 0.5)]],
    9: [[(0.7, 0.35), (0.5, 0.5), (0.3, 0.35), (0.5, 0.12), (0.7, 0.3), (0.65, 0.9)]],
}


def render_strokes(strokes: list[list[tuple[float, float]]], size: tuple[int, int] = (400, 400), width: int = 20,
                   ink: tuple[int, int, int, int] = (0, 0, 0, 255),
                   background: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    """Polylines in unit coordinates drawn like a sketchpad does: (H, W, 4) uint8, round pen."""
    from PIL import ImageDraw

    w, h = size
    img = Image.new("RGBA", (w, h), background)
    draw = ImageDraw.Draw(img)
    side = min(w, h)
    ox, oy = (w - side) / 2, (h - side) / 2
    for stroke in strokes:
        pts = [(ox + x * side, oy + y * side) for x, y in stroke]
        draw.line(pts, fill=ink, width=width, joint="curve")
        for px, py in (pts[0], pts[-1]):
            draw.ellipse([px - width / 2, py - width / 2, px + width / 2, py + width / 2], fill=ink)
    return np.asarray(img)

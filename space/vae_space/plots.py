"""Pictures for the Space, drawn with numpy and PIL so that a live update costs milliseconds.

Matplotlib draws only what is cached: each latent map's scatter of test digits is rendered once into
an image whose axes sit at known pixel positions (``LatentMap``). Per request, ellipses, paths and
markers are drawn over it with PIL at 2× and box-downsampled, which anti-aliases them cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

# matplotlib's tab10, so the PIL overlays match the cached scatter plots
CLASS_RGB = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
             (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
INK = (30, 34, 42)
MUTED = (110, 116, 128)
BLUE = (37, 99, 235)
ORANGE = (234, 88, 12)
RED = (220, 38, 38)
WHITE = (255, 255, 255)
PANEL = (248, 249, 251)
TILE_PAD = (64, 68, 76)  # between digit tiles: a dark grey that keeps black digit backgrounds apart


@lru_cache(maxsize=32)
def font(size: int) -> ImageFont.FreeTypeFont:
    # matplotlib's DejaVu Sans: shipped wherever matplotlib is (a Space too), and it has σ, β, ₁, −
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)


def to_rgb(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Images (N, C, 28, 28) or (N, 28, 28) floats in [0, 1] -> (N, 28, 28, 3) uint8."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, np.float32)
    if x.ndim == 3:
        x = x[:, None]
    x = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
    return np.repeat(x, 3, -1) if x.shape[-1] == 1 else x


def upscale(img: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour upscaling: digits stay crisp, and every k-th pixel is the original."""
    return img if k == 1 else np.repeat(np.repeat(img, k, 0), k, 1)


def digit(x: torch.Tensor | np.ndarray, k: int = 8) -> np.ndarray:
    """One image (C, 28, 28) or (28, 28) in [0, 1] -> (28k, 28k, 3) uint8."""
    return upscale(to_rgb(np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)[None])[0], k)


def canvas(w: int, h: int, color: Sequence[int] = WHITE) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (w, h), tuple(color))
    return img, ImageDraw.Draw(img)


def text_width(s: str, size: int) -> float:
    return font(size).getlength(s)


def placeholder(message: str, size: tuple[int, int] = (440, 300)) -> np.ndarray:
    """A visible 'not available' panel, so a missing model shows a message instead of a crash."""
    img, d = canvas(*size, PANEL)
    d.rectangle([0, 0, size[0] - 1, size[1] - 1], outline=(210, 214, 220), width=2)
    words, lines, line = message.split(), [], ""
    for w in words:
        if text_width(f"{line} {w}".strip(), 16) > size[0] - 40 and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    y = size[1] / 2 - 11 * len(lines)
    for ln in lines:
        d.text((size[0] / 2, y), ln, font=font(16), fill=MUTED, anchor="mt")
        y += 22
    return np.asarray(img)


def labelled_tiles(images: np.ndarray, labels: Sequence[str], k: int = 2, ncol: int | None = None,
                   colors: Sequence[Sequence[int]] | None = None, label_size: int = 13) -> np.ndarray:
    """Digits with a caption under each (nearest neighbours, samples by class)."""
    n = len(images)
    ncol = ncol or n
    side = 28 * k
    cell_w, cell_h = side + 8, side + label_size + 10
    nrow = -(-n // ncol)
    img, d = canvas(ncol * cell_w + 4, nrow * cell_h + 4)
    for i in range(n):
        r, c = divmod(i, ncol)
        x, y = 4 + c * cell_w, 4 + r * cell_h
        img.paste(Image.fromarray(upscale(images[i], k)), (x + 2, y))
        d.text((x + cell_w / 2 - 2, y + side + 3), labels[i], font=font(label_size),
               fill=tuple(colors[i]) if colors else INK, anchor="mt")
    return np.asarray(img)


def with_header(img: np.ndarray, title: str, subtitle: str = "", size: int = 15) -> np.ndarray:
    h = size + 10 + (size + 2 if subtitle else 0)
    out, d = canvas(img.shape[1], img.shape[0] + h)
    d.text((6, 4), title, font=font(size), fill=INK)
    if subtitle:
        d.text((6, size + 7), subtitle, font=font(size - 3), fill=MUTED)
    out.paste(Image.fromarray(img), (0, h))
    return np.asarray(out)


def hstack(images: Sequence[np.ndarray], gap: int = 12, color: Sequence[int] = WHITE) -> np.ndarray:
    h = max(i.shape[0] for i in images)
    out, _ = canvas(sum(i.shape[1] for i in images) + gap * (len(images) - 1), h, color)
    x = 0
    for i in images:
        out.paste(Image.fromarray(i), (x, 0))
        x += i.shape[1] + gap
    return np.asarray(out)


def vstack(images: Sequence[np.ndarray], gap: int = 10, color: Sequence[int] = WHITE) -> np.ndarray:
    w = max(i.shape[1] for i in images)
    out, _ = canvas(w, sum(i.shape[0] for i in images) + gap * (len(images) - 1), color)
    y = 0
    for i in images:
        out.paste(Image.fromarray(i), (0, y))
        y += i.shape[0] + gap
    return np.asarray(out)


# ---------------------------------------------------------------------------- posterior chart
_CHART = dict(top=30, left=34, right=14, span=4.0)


def _chart_row(n: int) -> int:
    return 18 if n <= 12 else 14 if n <= 20 else 10


@lru_cache(maxsize=8)
def _chart_frame(n: int, width: int) -> Image.Image:
    """The parts of the posterior chart that do not depend on the input: labels, axis, prior bands."""
    row, top, left, right, span = _chart_row(n), _CHART["top"], _CHART["left"], _CHART["right"], _CHART["span"]
    img, d = canvas(width, top + n * row + 24)
    x0, x1 = left, width - right
    sx = lambda v: x0 + (v + span) / (2 * span) * (x1 - x0)
    d.text((6, 6), "posterior q(z|x) per dimension · grey: prior ±1", font=font(12), fill=INK)
    for i in range(n):
        y = top + i * row + row / 2
        d.rectangle([sx(-1), y - row * 0.42, sx(1), y + row * 0.42], fill=(236, 238, 242))
        if n <= 20 or i % 2 == 0:
            d.text((left - 6, y), f"z{i + 1}", font=font(10), fill=MUTED, anchor="rm")
    yb = top + n * row + 4
    d.line([x0, yb, x1, yb], fill=(200, 204, 210))
    for v in range(-int(span), int(span) + 1, 2):
        d.line([sx(v), yb, sx(v), yb + 4], fill=(160, 164, 170))
        d.text((sx(v), yb + 6), f"{v:g}", font=font(10), fill=MUTED, anchor="mt")
    d.line([sx(0), top, sx(0), yb], fill=(200, 204, 210))
    return img


def posterior_chart(mu: np.ndarray, sigma: np.ndarray, width: int = 400) -> np.ndarray:
    """One row per latent dimension: the prior's ±1 band (grey), the posterior's ±2σ (light) and
    ±1σ (dark) bars and its mean (dot). Narrow bars far from 0 carry information; a bar that
    covers the grey band is a dimension the model does not use for this input."""
    n = len(mu)
    row, top, left, right, span = _chart_row(n), _CHART["top"], _CHART["left"], _CHART["right"], _CHART["span"]
    img = _chart_frame(n, width).copy()
    d = ImageDraw.Draw(img)
    x0, x1 = left, width - right
    sx = lambda v: x0 + (min(max(float(v), -span), span) + span) / (2 * span) * (x1 - x0)
    for i in range(n):
        y = top + i * row + row / 2
        m, s = float(mu[i]), float(sigma[i])
        d.line([sx(m - 2 * s), y, sx(m + 2 * s), y], fill=(147, 197, 253), width=max(2, row // 3))
        d.line([sx(m - s), y, sx(m + s), y], fill=BLUE, width=max(3, row // 2))
        r = max(2.5, row * 0.22)
        d.ellipse([sx(m) - r, y - r, sx(m) + r, y + r], fill=INK)
    return np.asarray(img)


def kl_bars(values: np.ndarray, names: Sequence[str], width: int, height: int = 110, vmax: float | None = None,
            color: Sequence[int] = BLUE, title: str = "") -> np.ndarray:
    """Bars in the given order (sorted by the caller), one shared scale when vmax is given."""
    n = len(values)
    vmax = float(vmax if vmax is not None else max(values.max(initial=0), 1e-6))
    img, d = canvas(width, height)
    top, bottom, left = 18 if title else 6, 18, 6
    if title:
        d.text((left, 2), title, font=font(12), fill=MUTED)
    bw = (width - 2 * left) / n
    base = height - bottom
    for i, v in enumerate(values):
        bh = (base - top) * min(v / vmax, 1.0)
        x = left + i * bw
        d.rectangle([x + bw * 0.15, base - bh, x + bw * 0.85, base], fill=tuple(color) if v >= 0.05 else (203, 213, 225))
        d.text((x + bw / 2, base + 2), names[i], font=font(10), fill=MUTED, anchor="mt")
    d.line([left, base, width - left, base], fill=(180, 184, 190))
    return np.asarray(img)


def frame_strip(rows: dict[str, np.ndarray], k: int = 3, gap: int = 4, title: str = "",
                label_w: int | None = None, notes: dict[str, str] | None = None
                ) -> tuple[np.ndarray, dict[str, list[list[int]]]]:
    """Labelled rows of frames (each (T, 28, 28, 3) uint8), under an optional title; ``notes`` adds a
    smaller second line under a row's label. Also returns every frame's box [x0, y0, x1, y1] in the image,
    so API users (and the tests) can cut frames out exactly."""
    notes = notes or {}
    label_w = label_w or int(max(max(text_width(name, 14), text_width(notes.get(name, ""), 11)) for name in rows)) + 18
    side = 28 * k
    top = 24 if title else 0
    t = max(len(f) for f in rows.values())
    img, d = canvas(label_w + t * (side + gap), top + len(rows) * (side + gap) + gap)
    if title:
        d.text((6, 4), title, font=font(13), fill=MUTED)
    boxes: dict[str, list[list[int]]] = {}
    for r, (name, frames) in enumerate(rows.items()):
        y = top + gap + r * (side + gap)
        note = notes.get(name)
        d.text((label_w - 10, y + side / 2 - (8 if note else 0)), name, font=font(14), fill=INK, anchor="rm")
        if note:
            d.text((label_w - 10, y + side / 2 + 9), note, font=font(11), fill=MUTED, anchor="rm")
        boxes[name] = []
        for i, f in enumerate(frames):
            x = label_w + i * (side + gap)
            img.paste(Image.fromarray(upscale(f, k)), (x, y))
            boxes[name].append([x, y, x + side, y + side])
    return np.asarray(img), boxes


def heat_map(values: np.ndarray, rows: Sequence[str], cols: Sequence[str], cell: tuple[int, int] = (30, 15),
             marked: Sequence[int] = ()) -> np.ndarray:
    """A small matrix of values in [0, 1] (e.g. |ρ|) in viridis cells inside a dark frame, the column names on
    top and the row names left (``marked`` rows in ink, the others muted)."""
    from matplotlib import colormaps

    cw, ch = cell
    left, top = 30, 16
    n, m = values.shape
    img, d = canvas(left + m * cw + 3, top + n * ch + 3)
    d.rectangle([left - 1, top - 1, left + m * cw + 1, top + n * ch + 1], fill=TILE_PAD)
    rgb = (colormaps["viridis"](np.clip(values, 0, 1))[..., :3] * 255).astype(np.uint8)
    for j, name in enumerate(cols):
        d.text((left + j * cw + cw / 2, top - 4), name, font=font(10), fill=MUTED, anchor="ms")
    for i, name in enumerate(rows):
        y = top + i * ch
        d.text((left - 4, y + ch / 2), name, font=font(10), fill=INK if i in marked else MUTED, anchor="rm")
        for j in range(m):
            d.rectangle([left + j * cw + 1, y + 1, left + (j + 1) * cw - 1, y + ch - 1], fill=tuple(rgb[i, j]))
    return np.asarray(img)


def color_scale(width: int, label: str) -> np.ndarray:
    """The heat maps' key: a viridis bar from 0 to 1 with its label."""
    from matplotlib import colormaps

    img, d = canvas(width, 30)
    bar = (colormaps["viridis"](np.linspace(0, 1, width - 60))[:, :3] * 255).astype(np.uint8)
    img.paste(Image.fromarray(np.repeat(bar[None], 8, 0)), (30, 4))
    d.text((26, 8), "0", font=font(10), fill=MUTED, anchor="rm")
    d.text((width - 26, 8), "1", font=font(10), fill=MUTED, anchor="lm")
    d.text((width / 2, 15), label, font=font(11), fill=MUTED, anchor="mt")
    return np.asarray(img)


def equation(parts: Sequence[np.ndarray | str], k: int = 4) -> np.ndarray:
    """Digits and operators in one row: a − b + c = result."""
    side = 28 * k
    widths = [side if isinstance(p, np.ndarray) else 44 for p in parts]
    img, d = canvas(sum(widths) + 8 * (len(parts) + 1), side + 16)
    x = 8
    for p, w in zip(parts, widths):
        if isinstance(p, np.ndarray):
            img.paste(Image.fromarray(upscale(p, k)), (x, 8))
        else:
            d.text((x + w / 2, 8 + side / 2), p, font=font(36), fill=INK, anchor="mm")
        x += w + 8
    return np.asarray(img)


# ---------------------------------------------------------------------------- latent maps
class LatentMap:
    """A cached scatter of test-set codes with a known data -> pixel mapping.

    ``z`` (N, 2) are posterior means, ``labels`` (N,) their digits. ``decorate(ax)`` may add static
    matplotlib artists (prior contours). ``lim`` is the half-width of the square view.
    """

    W, LEFT, RIGHT, TOP, BOTTOM = 440, 44, 12, 28, 42

    def __init__(self, z: np.ndarray, labels: np.ndarray, title: str, lim: float | None = None,
                 decorate: Callable | None = None, point_size: float = 4.0, faint: bool = False):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patheffects import withStroke

        self.lim = float(lim if lim is not None else max(3.0, float(np.percentile(np.abs(z), 99.5)) + 0.4))
        side = self.W - self.LEFT - self.RIGHT
        self.H = self.TOP + side + self.BOTTOM
        self.box = (self.LEFT, self.TOP, self.LEFT + side, self.TOP + side)  # axes in pixels, y down
        fig = Figure(figsize=(self.W / 100, self.H / 100), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((self.LEFT / self.W, self.BOTTOM / self.H, side / self.W, side / self.H))
        colors = np.array(CLASS_RGB)[labels] / 255.0
        if faint:
            colors = np.full_like(colors, 0.75)
        ax.scatter(z[:, 0], z[:, 1], c=colors, s=point_size, alpha=0.55, linewidths=0, rasterized=True)
        if not faint:
            for dgt in range(10):
                sel = labels == dgt
                if sel.sum() >= 5:
                    cx, cy = np.median(z[sel], 0)
                    if abs(cx) < self.lim and abs(cy) < self.lim:
                        ax.text(cx, cy, str(dgt), fontsize=13, fontweight="bold", color=np.array(CLASS_RGB[dgt]) / 255,
                                ha="center", va="center", path_effects=[withStroke(linewidth=3, foreground="white")])
        if decorate is not None:
            decorate(ax)
        ax.set_xlim(-self.lim, self.lim)
        ax.set_ylim(-self.lim, self.lim)
        ax.set_xlabel("z₁", fontsize=10, labelpad=2)
        ax.set_ylabel("z₂", fontsize=10, labelpad=0)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25, linewidth=0.6)
        ax.set_title(title, fontsize=10, pad=5)
        fig.canvas.draw()
        self.base = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy())

    @classmethod
    def from_png(cls, path: str | Path) -> LatentMap:
        """A map saved by ``save_png``: the picture and its limits, no matplotlib needed."""
        img = Image.open(path)
        img.load()
        m = cls.__new__(cls)
        m.lim = float(img.text["lim"])
        side = m.W - m.LEFT - m.RIGHT
        m.H = m.TOP + side + m.BOTTOM
        if img.size != (m.W, m.H):
            raise ValueError(f"{path}: unexpected size {img.size}")
        m.box = (m.LEFT, m.TOP, m.LEFT + side, m.TOP + side)
        m.base = img.convert("RGB")
        return m

    def save_png(self, path: str | Path) -> None:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("lim", repr(self.lim))
        self.base.save(path, format="PNG", pnginfo=info)

    def to_px(self, z: np.ndarray) -> np.ndarray:
        """Latent (..., 2) -> pixel (..., 2), x right, y down."""
        z = np.asarray(z, np.float64)
        x0, y0, x1, y1 = self.box
        px = x0 + (z[..., 0] + self.lim) / (2 * self.lim) * (x1 - x0)
        py = y1 - (z[..., 1] + self.lim) / (2 * self.lim) * (y1 - y0)
        return np.stack([px, py], -1)

    def draw(self, paint: Callable[[Overlay], None] | None = None) -> np.ndarray:
        """The map with ``paint(overlay)`` drawn over it, as an RGB array."""
        if paint is None:
            return np.asarray(self.base)
        ov = Overlay(self)
        paint(ov)
        return ov.finish()


class Overlay:
    """PIL drawing in latent coordinates at 2× resolution, box-downsampled onto the map.

    Only the region the shapes touch is downsampled and composited, and text notes are cached
    sprites pasted at 1×: a live update costs about a millisecond, not a full-frame resample."""

    SS = 2

    def __init__(self, m: LatentMap):
        self.m = m
        self.layer = Image.new("RGBA", (m.W * self.SS, m.H * self.SS), (0, 0, 0, 0))
        self.d = ImageDraw.Draw(self.layer)
        x0, y0, x1, y1 = m.box
        self.clip = (x0 * self.SS, y0 * self.SS, x1 * self.SS, y1 * self.SS)
        self.bbox = [np.inf, np.inf, -np.inf, -np.inf]
        self.notes: list[tuple[str, tuple[int, ...]]] = []
        self.inset_spec: tuple | None = None

    def _touch(self, x0: float, y0: float, x1: float, y1: float) -> None:
        b = self.bbox
        b[0], b[1], b[2], b[3] = min(b[0], x0), min(b[1], y0), max(b[2], x1), max(b[3], y1)

    def p(self, z: Sequence[float]) -> tuple[float, float]:
        px, py = self.m.to_px(np.asarray(z, np.float64)) * self.SS
        # keep far-away points on the frame so they stay visible
        return float(np.clip(px, self.clip[0], self.clip[2])), float(np.clip(py, self.clip[1], self.clip[3]))

    def ellipse(self, mu: Sequence[float], radii: Sequence[float], color: Sequence[int], width: float = 2.0,
                fill: Sequence[int] | None = None) -> None:
        cx, cy = self.m.to_px(np.asarray(mu, np.float64)) * self.SS
        scale = (self.m.box[2] - self.m.box[0]) / (2 * self.m.lim) * self.SS
        # cap the radii: a huge σ would only fill the frame (and cost a full-frame composite)
        cap = 4 * self.m.W * self.SS
        rx, ry = min(max(radii[0] * scale, 2.0), cap), min(max(radii[1] * scale, 2.0), cap)
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        self.d.ellipse(box, outline=tuple(color), width=round(width * self.SS), fill=tuple(fill) if fill else None)
        self._touch(*box)

    def polygon_z(self, pts: np.ndarray, color: Sequence[int], width: float = 2.0) -> None:
        xy = [tuple(v) for v in (self.m.to_px(pts) * self.SS).tolist()]
        self.d.line(xy + xy[:1], fill=tuple(color), width=round(width * self.SS), joint="curve")
        a = np.array(xy)
        self._touch(*a.min(0), *a.max(0))

    def path(self, pts: np.ndarray, color: Sequence[int], width: float = 2.0, dots: bool = True) -> None:
        xy = [self.p(z) for z in pts]
        self.d.line(xy, fill=tuple(color), width=round(width * self.SS), joint="curve")
        if dots:
            for x, y in xy:
                r = 2.2 * self.SS
                self.d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(color))
        a = np.array(xy)
        self._touch(*a.min(0), *a.max(0))

    def marker(self, z: Sequence[float], color: Sequence[int] = INK, r: float = 5.0, label: str = "",
               ring: Sequence[int] = WHITE) -> None:
        x, y = self.p(z)
        rr = r * self.SS
        o = rr + 2 * self.SS
        self.d.ellipse([x - o, y - o, x + o, y + o], fill=tuple(ring))
        self.d.ellipse([x - rr, y - rr, x + rr, y + rr], fill=tuple(color))
        self._touch(x - o, y - o, x + o, y + o)
        if label:
            tx, ty = x + rr + 3 * self.SS, y - rr - 2 * self.SS
            self.d.text((tx, ty), label, font=font(15 * self.SS), fill=tuple(color),
                        stroke_width=3 * self.SS, stroke_fill=WHITE, anchor="ls")
            self._touch(tx, ty - 20 * self.SS, tx + text_width(label, 15 * self.SS) + 6 * self.SS, ty + 6 * self.SS)

    def cross(self, z: Sequence[float], color: Sequence[int] = INK, r: float = 6.0) -> None:
        x, y = self.p(z)
        rr = r * self.SS
        for w, c in ((5, WHITE), (2.2, color)):
            self.d.line([x - rr, y, x + rr, y], fill=tuple(c), width=round(w * self.SS))
            self.d.line([x, y - rr, x, y + rr], fill=tuple(c), width=round(w * self.SS))
        self._touch(x - rr - 6, y - rr - 6, x + rr + 6, y + rr + 6)

    def arrow(self, a: Sequence[float], b: Sequence[float], color: Sequence[int], width: float = 2.5) -> None:
        (xa, ya), (xb, yb) = self.p(a), self.p(b)
        self.d.line([xa, ya, xb, yb], fill=tuple(color), width=round(width * self.SS))
        ang = np.arctan2(yb - ya, xb - xa)
        h = 11 * self.SS
        left = (xb - h * np.cos(ang - 0.4), yb - h * np.sin(ang - 0.4))
        right = (xb - h * np.cos(ang + 0.4), yb - h * np.sin(ang + 0.4))
        self.d.polygon([(xb, yb), left, right], fill=tuple(color))
        pts = np.array([(xa, ya), (xb, yb), left, right])
        self._touch(*pts.min(0), *pts.max(0))

    def dots(self, z: np.ndarray, colors: Sequence[Sequence[int]], r: float = 2.2) -> None:
        if len(z) == 0:
            return
        rr = r * self.SS
        xy = self.m.to_px(z) * self.SS
        for (x, y), c in zip(xy.tolist(), colors):
            self.d.ellipse([x - rr, y - rr, x + rr, y + rr], fill=tuple(c))
        self._touch(*(xy.min(0) - rr), *(xy.max(0) + rr))

    def note(self, s: str, color: Sequence[int] = INK) -> None:
        self.notes.append((s, tuple(color)))

    def inset(self, mu: Sequence[float], sigma: Sequence[float], z: np.ndarray, colors: np.ndarray,
              color: Sequence[int] = RED, size: int = 150) -> None:
        """A magnified view around a posterior (top right of the axes): the 1σ and 2σ ellipses and the
        nearby test codes, drawn as vectors, for when σ is too small to see on the whole map."""
        self.inset_spec = (np.asarray(mu, np.float64), np.asarray(sigma, np.float64), z, colors, tuple(color), size)

    def _draw_inset(self, out: Image.Image) -> None:
        mu, sigma, z, colors, color, size = self.inset_spec
        half = max(3.0 * float(sigma.max()), 0.08)  # latent half-width of the window
        scale_map = (self.m.box[2] - self.m.box[0]) / (2 * self.m.lim)
        zoom = scale_map and (size / 2) / (half * scale_map)
        if zoom < 1.5:  # big enough on the map itself
            return
        ss = self.SS
        panel = Image.new("RGBA", (size * ss, size * ss), (255, 255, 255, 245))
        d = ImageDraw.Draw(panel)
        k = size * ss / (2 * half)
        to = lambda v: ((v[..., 0] - mu[0] + half) * k, (half - (v[..., 1] - mu[1])) * k)
        near = np.all(np.abs(z - mu) < half, 1)
        if near.any():
            xs, ys = to(z[near])
            r = 2.6 * ss
            for x, y, c in zip(xs.tolist(), ys.tolist(), colors[near].tolist()):
                d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(c))
        cx, cy = to(mu)
        for kk, w in ((2, 1.6), (1, 2.6)):
            rx, ry = kk * sigma[0] * k, kk * sigma[1] * k
            d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], outline=color, width=round(w * ss),
                      fill=(*color[:3], 28) if kk == 2 else None)
        d.rectangle([0, 0, size * ss - 1, size * ss - 1], outline=(120, 126, 138), width=2 * ss)
        panel = panel.reduce(ss)
        px, py = self.m.to_px(mu)
        bx0, by0, bx1, by1 = self.m.box
        right = px < (bx0 + bx1) / 2  # the side away from the posterior
        top = py > by0 + size + 40  # below the inset's spot: keep the top; else use the bottom
        x0 = bx1 - size - 6 if right else bx0 + 6
        y0 = by0 + 26 if top else by1 - size - 22
        out.paste(panel, (x0, y0), panel)
        lab = _text_sprite(f"×{zoom:.0f} around your drawing", 11, tuple(INK))
        out.paste(lab, (x0 + size - lab.width, y0 + size + 1), lab)

    def finish(self) -> np.ndarray:
        out = self.m.base.copy()
        if np.isfinite(self.bbox[0]):
            ss = self.SS
            x0 = int(max(0, np.floor(self.bbox[0] / ss) - 2)) * ss
            y0 = int(max(0, np.floor(self.bbox[1] / ss) - 2)) * ss
            x1 = int(min(self.m.W, np.ceil(self.bbox[2] / ss) + 2)) * ss
            y1 = int(min(self.m.H, np.ceil(self.bbox[3] / ss) + 2)) * ss
            if x1 > x0 and y1 > y0:
                part = self.layer.crop((x0, y0, x1, y1)).reduce(ss)
                out.paste(part, (x0 // ss, y0 // ss), part)
        if self.inset_spec is not None:
            self._draw_inset(out)
        x, y = self.m.box[0] + 8, self.m.box[1] + 6
        for s, color in self.notes:
            sprite = _text_sprite(s, 12, color)
            out.paste(sprite, (x, y), sprite)
            y += sprite.height
        return np.asarray(out)


@lru_cache(maxsize=256)
def _text_sprite(s: str, size: int, color: tuple[int, ...]) -> Image.Image:
    """Text with a white halo on a transparent background, rendered once per string."""
    w = int(text_width(s, size)) + 8
    img = Image.new("RGBA", (w, size + 10), (0, 0, 0, 0))
    ImageDraw.Draw(img).text((3, 3), s, font=font(size), fill=color, stroke_width=3, stroke_fill=WHITE)
    return img


def ellipse_points(cov: np.ndarray, k: float, mean: Sequence[float] = (0.0, 0.0), n: int = 96) -> np.ndarray:
    """Points on the k-sigma contour of a 2-D Gaussian with covariance ``cov``."""
    vals, vecs = np.linalg.eigh(np.asarray(cov, np.float64))
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], -1) * (k * np.sqrt(np.maximum(vals, 0)))
    return circle @ vecs.T + np.asarray(mean)

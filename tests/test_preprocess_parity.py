"""Drawing -> MNIST preprocessing, in the browser and in Python, on the same pixels.

space/vae_space/web/preprocess.js ports vae_hub/data/preprocess.py (whose module docstring specifies the rules)
line by line. Headless Chromium (Debian's, driven by Playwright) draws each stroke set on a 280×280
canvas the way the Draw & encode pad does (black round pen on a transparent background), runs the JS
on getImageData(), and the very same RGBA bytes go through Python's ``to_mnist``: the 28×28 inputs must
agree (mean absolute difference ≤ 0.02, centres of mass within 0.5 px; in fact to float precision, so
that the browser's encoder outputs match the server's), and drawings that are not one digit must fail
with the same message on both sides.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from vae_hub.data.preprocess import DIGIT_STROKES, DrawingError, _resize, ink_map, ink_to_mnist, render_strokes, to_mnist

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "space" / "vae_space" / "web" / "preprocess.js"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PAD = 280  # the app's pad (space/vae_space/tabs/draw.py)
FLOAT_PRECISION = 1e-5  # what we actually get is 0: the same arithmetic on both sides

EMPTY = "Draw a digit first: the canvas is empty."
ALL_INK = "The canvas is nearly all ink: clear it and draw one digit."
DOT = "That is only a dot: draw a whole digit, filling most of the pad."


def _place(strokes, scale: float, ox: float, oy: float):
    return [[(ox + scale * x, oy + scale * y) for x, y in s] for s in strokes]


def _case(strokes, width: int = 20, **extra) -> dict:
    return {"strokes": strokes, "width": width, **extra}


ZIGZAG = [[(0.2 + 0.6 * (i % 2), 0.15 + 0.7 * i / 9) for i in range(10)]]
CASES: dict[str, dict] = {
    **{f"digit {d}": _case(s) for d, s in DIGIT_STROKES.items()},
    "thin 7 (width 6)": _case(DIGIT_STROKES[7], 6),
    "hairline 3 (width 2)": _case(DIGIT_STROKES[3], 2),
    "thick 2 (width 40)": _case(DIGIT_STROKES[2], 40),
    "thick 0 (width 40)": _case(DIGIT_STROKES[0], 40),
    "off-centre 3, top left": _case(_place(DIGIT_STROKES[3], 0.45, 0.0, 0.02), 14),
    "off-centre 6, bottom right": _case(_place(DIGIT_STROKES[6], 0.5, 0.5, 0.48), 16),
    "wide minus": _case([[(0.15, 0.52), (0.85, 0.48)]], 20),
    "tall 1": _case([[(0.5, 0.06), (0.5, 0.94)]], 16),
    "tiny 8": _case(_place(DIGIT_STROKES[8], 0.15, 0.42, 0.4), 8),
    "4 cut by the edges": _case(_place(DIGIT_STROKES[4], 1.25, -0.125, -0.125), 24),
    "line along the left edge": _case([[(0.0, 0.1), (0.01, 0.9)]], 20),
    "faint 5 (alpha 0.35)": _case(DIGIT_STROKES[5], 18, alpha=0.35),
    "8 half erased": _case(DIGIT_STROKES[8], 20, erase=[[(0.1, 0.3), (0.9, 0.3)]], erase_width=40),
    "9 drawn segment by segment": _case(DIGIT_STROKES[9], 20, segments=True),
    "zigzag": _case(ZIGZAG, 10),
    "X, two strokes": _case([[(0.2, 0.2), (0.8, 0.8)], [(0.8, 0.2), (0.2, 0.8)]], 12),
    "dot": _case([[(0.5, 0.5)]], 20),
    "empty": _case([]),
    "all ink": _case([], fill=True),
}
ERRORS = {"dot": DOT, "empty": EMPTY, "all ink": ALL_INK}
WITH_INK = {"digit 3", "faint 5 (alpha 0.35)", "8 half erased"}  # also compare the ink maps

# Draws a case like the pad's paintStroke (web/draw.js), then runs preprocess.js on the pixels.
DRAW = """({ pad, cases }) => cases.map((c) => {
  const cv = document.createElement("canvas");
  cv.width = cv.height = pad;
  const g = cv.getContext("2d", { willReadFrequently: true });
  const paint = (strokes, width, op) => {
    g.save();
    g.globalCompositeOperation = op;
    g.strokeStyle = g.fillStyle = "#000";
    g.lineWidth = width;
    g.lineCap = g.lineJoin = "round";
    for (const s of strokes) {
      const p = s.map(([x, y]) => [x * cv.width, y * cv.height]);
      if (p.length === 1) {
        g.beginPath(); g.arc(p[0][0], p[0][1], width / 2, 0, 2 * Math.PI); g.fill();
      } else if (c.segments) {
        for (let i = 1; i < p.length; i++) { g.beginPath(); g.moveTo(...p[i - 1]); g.lineTo(...p[i]); g.stroke(); }
      } else {
        g.beginPath(); g.moveTo(...p[0]);
        for (let i = 1; i < p.length; i++) g.lineTo(...p[i]);
        g.stroke();
      }
    }
    g.restore();
  };
  if (c.fill) { g.fillStyle = "#000"; g.fillRect(0, 0, cv.width, cv.height); }
  g.globalAlpha = c.alpha ?? 1;
  paint(c.strokes, c.width, "source-over");
  g.globalAlpha = 1;
  paint(c.erase ?? [], c.erase_width ?? 0, "destination-out");
  const img = g.getImageData(0, 0, cv.width, cv.height);
  let bin = "";
  for (let i = 0; i < img.data.length; i += 0x8000) bin += String.fromCharCode.apply(null, img.data.subarray(i, i + 0x8000));
  const P = globalThis.VAEPreprocess;
  const out = { rgba: btoa(bin), x: null, ink: null, error: null };
  const t0 = performance.now();
  try {
    out.x = Array.from(P.toMnist(img.data, img.width, img.height));
  } catch (e) {
    if (!(e instanceof P.DrawingError) || !(e instanceof Error)) throw e;
    out.error = e.message;
  }
  out.ms = performance.now() - t0;
  if (c.ink && out.x) out.ink = Array.from(P.inkFromRGBA(img.data, img.width, img.height));
  return out;
})"""


@pytest.fixture(scope="module")
def browser_results() -> dict[str, dict]:
    """Every case drawn and preprocessed in one page of one browser."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.add_script_tag(path=str(JS))
            assert page.evaluate("() => Object.keys(globalThis.VAEPreprocess).sort()") == [
                "DrawingError", "inkFromRGBA", "inkToMnist", "toMnist"]
            cases = [{**c, "ink": name in WITH_INK} for name, c in CASES.items()]
            results = dict(zip(CASES, page.evaluate(DRAW, {"pad": PAD, "cases": cases})))
            # a canvas larger than Python reads as is: refused rather than guessed at
            big = page.evaluate("""() => { try { VAEPreprocess.toMnist(new Uint8ClampedArray(301 * 280 * 4), 301, 280); }
                                      catch (e) { return e.name; } }""")
            assert big == "RangeError", big
            assert not errors, errors
        finally:
            browser.close()
    return results


def _python(rgba: np.ndarray) -> np.ndarray | str:
    try:
        return to_mnist(rgba)
    except DrawingError as e:
        return str(e)


def _centre(x: np.ndarray) -> np.ndarray:
    idx = np.arange(28)
    return np.array([(x.sum(1) * idx).sum(), (x.sum(0) * idx).sum()]) / x.sum()


@pytest.mark.parametrize("name", list(CASES))
def test_browser_and_python_agree(browser_results, name):
    r = browser_results[name]
    rgba = np.frombuffer(base64.b64decode(r["rgba"]), np.uint8).reshape(PAD, PAD, 4)
    py = _python(rgba)
    if name in ERRORS:
        assert r["error"] == py == ERRORS[name], (r["error"], py)
        return
    assert r["error"] is None and not isinstance(py, str), (r["error"], py)
    js = np.asarray(r["x"], np.float32).reshape(28, 28)
    assert js.min() >= 0 and js.max() == 1, (js.min(), js.max())
    diff = np.abs(js - py)
    assert diff.mean() <= 0.02, diff.mean()
    assert np.abs(_centre(js) - _centre(py)).max() <= 0.5, (_centre(js), _centre(py))
    assert diff.max() <= FLOAT_PRECISION, diff.max()
    if r["ink"] is not None:
        ink = ink_map(rgba)
        assert np.abs(np.asarray(r["ink"], np.float32).reshape(ink.shape) - ink).max() <= FLOAT_PRECISION


def test_canvas_drawings_look_like_pillow_renders(browser_results):
    """The browser's canvas and render_strokes (what the other tests draw with) make nearly the same digits,
    up to a 1 px placement (a centre of mass near a half pixel rounds either way)."""
    for d in range(10):
        js = np.asarray(browser_results[f"digit {d}"]["x"], np.float32).reshape(28, 28)
        pil = to_mnist(render_strokes(DIGIT_STROKES[d], size=(PAD, PAD), width=20))
        best = min(np.abs(np.roll(js, (dy, dx), (0, 1)) - pil).mean() for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        assert best < 0.04, (d, best)


def test_to_mnist_is_ink_to_mnist_of_ink_map():
    img = render_strokes(DIGIT_STROKES[2], size=(300, 240), width=9)
    np.testing.assert_array_equal(to_mnist(img), ink_to_mnist(ink_map(img)))
    with pytest.raises(DrawingError, match="only a dot"):
        ink_to_mnist(np.pad(np.ones((10, 10), np.float32), 100))
    with pytest.raises(DrawingError, match="empty"):
        ink_to_mnist(np.zeros((50, 50), np.float32))


def test_area_resize():
    rng = np.random.default_rng(0)
    a = rng.random((12, 18)).astype(np.float32)
    np.testing.assert_array_equal(_resize(a, 18, 12), a)  # same size: untouched
    blocks = a.reshape(4, 3, 6, 3).mean((1, 3), dtype=np.float64)
    np.testing.assert_allclose(_resize(a, 6, 4), blocks, rtol=1e-6)  # whole factors: block means
    for w, h in [(7, 5), (40, 25), (1, 1), (18, 1)]:  # any factor keeps the mean (each row of weights adds up to 1)
        assert abs(_resize(a, w, h).mean(dtype=np.float64) - a.mean(dtype=np.float64)) < 1e-6
    up = _resize(np.array([[0, 1]], np.float32), 3, 1)  # enlarging blends only across straddled edges
    np.testing.assert_allclose(up, [[0, 0.5, 1]])

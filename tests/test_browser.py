"""The Space in a real browser: headless Chromium (Debian's) driven by Playwright draws a 7 with the
mouse on the sketchpad, waits for the reconstruction and the latent map to update, checks that they
changed, and saves a screenshot of what a user sees.

Shares the app started by tests/test_space.py (`python space/app.py`, bundled weights, 127.0.0.1).
"""

from __future__ import annotations

import io
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_space import space_url
from vae_hub.preprocess import DIGIT_STROKES

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SCREENSHOT = ARTIFACTS / "space-draw.png"


def _img_src(page, elem_id: str) -> str | None:
    return page.evaluate(f"() => {{ const i = document.querySelector('#{elem_id} img'); return i ? i.src : null; }}")


def _fetch(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=10) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))


def _wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _draw(page, strokes, box: dict) -> None:
    """Mouse strokes inside the drawing area: the canvas element also holds a margin around the image,
    so draw within the central part of the smaller side, where the image always is."""
    side = 0.55 * min(box["width"], box["height"])
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for stroke in strokes:
        pts = [(cx + (x - 0.5) * side, cy + (y - 0.5) * side) for x, y in stroke]
        page.mouse.move(*pts[0])
        page.mouse.down()
        for x, y in pts[1:]:
            page.mouse.move(x, y, steps=10)
        page.mouse.up()


def test_draw_a_seven_in_chromium():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    url = space_url()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_selector("#draw-pad canvas", timeout=60_000)
            # the page-load events fill the empty latent map; the brush is picked for us
            _wait_for(lambda: _img_src(page, "encode-map") is not None, what="the initial latent map")
            page.wait_for_selector('#draw-pad button[aria-label="Brush"]', timeout=10_000)
            map_before = _img_src(page, "encode-map")
            assert _img_src(page, "encode-recon") is None
            pixels_before = _fetch(map_before)

            _draw(page, DIGIT_STROKES[7], page.locator("#draw-pad canvas").last.bounding_box())

            _wait_for(lambda: _img_src(page, "encode-recon") is not None, what="the reconstruction")
            _wait_for(lambda: _img_src(page, "encode-map") != map_before, what="the latent map to update")
            # both strokes have gone through: the summary reports a result for the whole drawing
            _wait_for(lambda: "percentile" in page.inner_text("#encode-summary"), what="the typicality summary")
            time.sleep(1.0)  # the last stroke's update, if one is still on its way
            recon = _fetch(_img_src(page, "encode-recon"))
            inp = _fetch(_img_src(page, "encode-input"))
            map_after = _fetch(_img_src(page, "encode-map"))
            assert recon.shape == inp.shape == (224, 224, 3)
            assert inp[::8, ::8].max() == 255 and inp[0].max() == 0, "the input is a white digit on black"
            assert recon.std() > 10, "the reconstruction is an image, not a blank"
            assert map_after.shape == pixels_before.shape and np.abs(map_after.astype(int) - pixels_before).sum() > 0, \
                "the posterior ellipses were drawn on the map"
            assert not errors, f"JavaScript errors: {errors}"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            print(f"screenshot: {SCREENSHOT}")
        finally:
            browser.close()

"""The static site (python -m vae_space.static): built from the same engine and modules as the Gradio Space,
served by a plain static server with no app behind it, used in headless Chromium as a visitor would (a 7 with
the mouse, a 1 with touch, interpolation, β comparison, the explorer, samples, a model card), every request
staying on the site, and its numbers equal to the Gradio Space's API for the same drawing."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.test_browser import Page, _classify
from tests.test_space import space_url
from vae_hub.preprocess import DIGIT_STROKES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    # this checkout's vae_hub and vae_space, not those of an editable install of another checkout
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "space")])}
    r = subprocess.run([sys.executable, "-m", "vae_space.static", str(out)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield out, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_the_site_is_complete_and_small(site):
    out, _ = site
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert size <= 40 * 2**20, f"{size / 2**20:.1f} MiB"
    assert (out / "index.html").is_file() and (out / "manifest.json").is_file() and (out / "web" / "app.js").is_file()
    assert "sdk: static" in (out / "README.md").read_text()
    # no path of the build machine anywhere in what is served
    text = (out / "manifest.json").read_text() + (out / "index.html").read_text()
    assert str(ROOT) not in text and str(Path.home()) not in text


def _page(browser, url: str, **context) -> Page:
    pg = Page.__new__(Page)
    pg.context = browser.new_context(viewport={"width": 1440, "height": 1000}, **context)
    pg.page = pg.context.new_page()
    pg.errors, pg.requests = [], []
    pg.page.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.page.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.page.on("request", lambda r: pg.requests.append(r.url))
    pg.page.goto(url)
    pg.page.wait_for_selector("#draw-pad[data-ready='1']", timeout=120_000)
    pg.canvas = pg.page.locator("#draw-pad canvas")
    return pg


def test_drawing_in_the_static_site_matches_the_gradio_api(site, browser, tmp_path):
    _, url = site
    pg = _page(browser, url)
    try:
        assert pg.state("runtime") == "browser"
        pg.draw_mouse(DIGIT_STROKES[7])
        pg.settle()
        assert pg.state("strokeUpdates") >= 3
        assert _classify(pg.recon()) == 7
        last = pg.state("last")
        from gradio_client import Client, handle_file

        png = pg.pad_png(tmp_path / "seven.png")
        pad = {"background": None, "layers": [], "composite": handle_file(str(png)), "id": None}
        server = Client(space_url(), verbose=False).predict(pad, last["model"], api_name="/encode")[6]
        np.testing.assert_allclose(last["mean"], server["mean"], atol=1e-3)
        np.testing.assert_allclose(last["sigma"], server["sigma"], atol=1e-3)
        assert abs(last["elbo"] - server["elbo"]) < 0.1
        assert [n["test_index"] for n in last["neighbours"]] == [n["test_index"] for n in server["neighbours"]]
        # the explorer: hovering the map decodes in the page
        pg.page.get_by_role("tab", name="Latent explorer").click()
        pg.page.wait_for_selector(".vx-root[data-ready='1']", timeout=60_000)
        box = pg.page.locator(".vx-map").bounding_box()
        before = pg.page.evaluate("() => window.vaeExplore.decodes")
        pg.page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.4 * box["height"], steps=6)
        pg.page.wait_for_function("(n) => window.vaeExplore.decodes > n && !window.vaeExplore.app.busy", arg=before)
        # Interpolate: two test digits, both paths, in the page
        pg.page.get_by_role("tab", name="Interpolate").click()
        pg.page.wait_for_selector(".vi-root[data-ready='1']", timeout=60_000)
        assert len(pg.page.evaluate("() => window.vaeInterpolate.strip")) == 2 * 10 * 784
        # β comparison: the five models on one input, swept from its own code
        pg.page.get_by_role("tab", name="β comparison").click()
        pg.page.wait_for_selector(".vb-root[data-ready='1']", timeout=60_000)
        assert len(pg.page.evaluate("() => window.vaeBetaPage.results")) == 5
        # Generate: both sources decoded in the page, and a new seed draws again
        pg.page.get_by_role("tab", name="Generate").click()
        pg.page.wait_for_selector(".vg-root[data-ready='1']", timeout=60_000)
        z = pg.page.evaluate("() => window.vaeGenerate.z")
        assert len(z["prior"]) == len(z["density"]) == 36 * 20
        pg.page.click(".vg-root button[data-action='sample']")
        pg.page.wait_for_function("() => window.vaeGenerate.decodes > 1 && !window.vaeGenerate.app.busy")
        assert pg.page.evaluate("() => window.vaeGenerate.z.prior") != z["prior"]
        # Models: a card and its figures, from the site's own files
        pg.page.get_by_role("tab", name="Models").click()
        pg.page.wait_for_selector(".vm-root[data-ready='1']", timeout=60_000)
        assert "Training recipe" in pg.page.inner_text(".vm-card")
        pg.page.locator(".vm-fig img").first.scroll_into_view_if_needed()
        pg.page.wait_for_function("() => document.querySelector('.vm-fig img').naturalWidth > 0", timeout=30_000)
        assert all(u.startswith(url) or u.startswith("data:") for u in pg.requests), "a request left the site"
        assert not pg.errors, pg.errors
    finally:
        pg.close()


def test_touch_draws_a_one_on_a_phone(site, browser):
    _, url = site
    pg = _page(browser, url, has_touch=True, is_mobile=True, device_scale_factor=3)
    try:
        pg.page.set_viewport_size({"width": 390, "height": 844})
        pg.page.locator("#draw-pad canvas").scroll_into_view_if_needed()
        pg.draw_touch(DIGIT_STROKES[1])
        pg.settle()
        assert pg.state("updates") >= 2 and _classify(pg.recon()) == 1
        assert not pg.errors, pg.errors
    finally:
        pg.close()

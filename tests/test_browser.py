"""The Space in a real browser: headless Chromium (Debian's) driven by Playwright draws on the pad of
Draw & encode, where the preprocessing and the models run in the page (onnxruntime-web). The app's own page
(``/``) is what a visitor gets; Gradio's page (``/?ui=gradio``) has the tabs the app's page links to, and the
same pad in a Gradio panel (the touch test draws there).

- a 7 drawn with the mouse: the reconstruction updates during the stroke, the bundled classifier reads a
  7 in the reconstruction read back from the page, and the page's numbers match the server's /encode for
  the same drawing (codes within 1e-3, ELBO within 0.1 nat);
- a 1 drawn with touch events;
- Clear returns the tab to its empty state quietly and the pad draws again;
- with WebAssembly removed, the pad falls back to the server, says so, and keeps working;
- a first visit whose runtime arrives late is answered by the server from the first stroke, then switches to the
  page with the same numbers; a second visit downloads none of the page's files again; no URL the page asks for
  and no text it shows holds a path of the server;
- no console errors.

Shares the app started by tests/test_space.py (`python space/app.py`, bundled weights, 127.0.0.1).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.test_space import space_url
from vae_hub.data.preprocess import DIGIT_STROKES

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
class Page:
    """A page of the app with its console errors collected."""

    def __init__(self, browser, init_script: str | None = None, path: str = "",
                 ready: str = "#draw-pad[data-ready='1']", **context):
        self.context = browser.new_context(viewport={"width": 1440, "height": 1000}, **context)
        if init_script:
            self.context.add_init_script(init_script)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.goto(space_url() + path)
        self.page.wait_for_selector(ready, timeout=120_000)
        self.canvas = self.page.locator("#draw-pad canvas")

    def state(self, key: str):
        return self.page.evaluate(f"() => window.vaeDraw.{key}")

    def points(self, stroke, margin: float = 0.12) -> list[tuple[float, float]]:
        box = self.canvas.bounding_box()
        side = (1 - 2 * margin) * box["width"]
        return [(box["x"] + box["width"] * margin + x * side, box["y"] + box["height"] * margin + y * side)
                for x, y in stroke]

    def draw_mouse(self, strokes, steps: int = 12) -> None:
        for stroke in strokes:
            pts = self.points(stroke)
            self.page.mouse.move(*pts[0])
            self.page.mouse.down()
            for x, y in pts[1:]:
                self.page.mouse.move(x, y, steps=steps)
            self.page.mouse.up()

    def draw_touch(self, strokes, steps: int = 12) -> None:
        cdp = self.context.new_cdp_session(self.page)
        for stroke in strokes:
            pts = self.points(stroke)
            cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": pts[0][0], "y": pts[0][1]}]})
            for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
                for t in np.linspace(0, 1, steps + 1)[1:]:
                    p = {"x": x0 + t * (x1 - x0), "y": y0 + t * (y1 - y0)}
                    cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [p]})
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    def settle(self) -> None:
        """Wait until the last change is painted (no update pending or running)."""
        self.page.wait_for_function("() => { const a = window.vaeDraw.app; return !a.busy && !a.dirty && "
                                    "a.pending === null && !a.scheduled && !a.measuring; }", timeout=30_000)
        self.page.wait_for_timeout(100)

    def recon(self) -> np.ndarray:
        """The reconstruction as painted, read back from its canvas: (28, 28) in [0, 1]."""
        rgba = self.page.evaluate("() => { const c = document.querySelector('#encode-recon canvas'); "
                                  "return Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data); }")
        return np.asarray(rgba, np.float32).reshape(28, 28, 4)[:, :, 0] / 255

    def pad_png(self, path: Path) -> Path:
        url = self.page.evaluate("() => document.querySelector('#draw-pad canvas').toDataURL('image/png')")
        path.write_bytes(base64.b64decode(url.split(",", 1)[1]))
        return path

    def close(self) -> None:
        self.context.close()

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _classify(img: np.ndarray) -> int:
    from vae_hub.evaluation.classifier import load_classifier

    model = load_classifier()
    with torch.inference_mode():
        return int(model(torch.from_numpy(img)[None, None]).argmax(1))


def test_draw_a_seven_live_and_it_matches_the_server(browser, tmp_path):
    with Page(browser) as pg:
        assert pg.state("runtime") == "browser", "onnxruntime-web should run in the page"
        assert pg.page.locator("#encode-recon .vd-empty, #encode-recon.vd-empty").count() + \
            pg.page.locator("#encode-recon .vd-frame.vd-empty").count() > 0, "empty outputs show their placeholders"
        requests: list[str] = []
        pg.page.on("request", lambda r: requests.append(r.url))
        pg.draw_mouse(DIGIT_STROKES[7])
        pg.settle()
        assert pg.state("strokeUpdates") >= 3, "the reconstruction updates while the stroke is drawn"
        # the live loop runs in the page; the one server call is the handwriting measure, once a stroke ends (the
        # other requests are files: the neighbours' pictures)
        calls = [u for u in requests if "/vh-call/" in u]
        measures = [u for u in calls if u.split("?")[0].rstrip("/").endswith("/vh-call/handwriting")]
        assert pg.state("serverRequests") == 0 and len(measures) == len(calls), f"only measures: {calls}"
        assert all("/vh/" in u for u in requests if u not in calls), requests
        assert 1 <= len(measures) == pg.state("measures") <= len(DIGIT_STROKES[7]), "at most one per stroke"
        hand = pg.state("handwriting")
        shown = pg.page.inner_text("#encode-handwriting")
        assert f"{hand['thickness']:.1f} px" in shown and "slant" in shown
        recon = pg.recon()
        assert recon.std() > 0.1
        assert _classify(recon) == 7, "the classifier reads a 7 in the reconstruction shown"
        last = pg.state("last")
        ARTIFACTS.mkdir(exist_ok=True)
        pg.page.screenshot(path=str(ARTIFACTS / "space-draw.png"), full_page=True)

        # the same drawing through the server's /encode, as a gradio_client user sends it
        from gradio_client import Client, handle_file

        png = pg.pad_png(tmp_path / "seven.png")
        pad = {"background": None, "layers": [], "composite": handle_file(str(png)), "id": None}
        client = Client(space_url(), verbose=False)
        server = client.predict(pad, last["model"], api_name="/encode")[6]
        assert server["model"] == last["model"] == "vae-z20"
        np.testing.assert_allclose(last["mean"], server["mean"], atol=1e-3)
        np.testing.assert_allclose(last["sigma"], server["sigma"], atol=1e-3)
        assert abs(last["elbo"] - server["elbo"]) < 0.1
        assert abs(last["elbo_percentile"] - server["elbo_percentile"]) <= 0.5
        # the page shows the same thickness and slant the server measures on its own preprocessing
        assert abs(hand["thickness"] - server["handwriting"]["thickness"]) < 0.1
        assert abs(hand["slant"] - server["handwriting"]["slant"]) < 1.0
        assert [n["test_index"] for n in last["neighbours"]] == [n["test_index"] for n in server["neighbours"]]
        assert not pg.errors, pg.errors


def test_touch_draws_a_one_and_clear_resets_quietly(browser):
    with Page(browser, has_touch=True, path="?ui=gradio") as pg:  # the pad in Gradio's page: the same module
        pg.draw_touch(DIGIT_STROKES[1])
        pg.settle()
        assert pg.state("updates") >= 2
        assert _classify(pg.recon()) == 1
        assert pg.state("handwriting")["thickness"] > 0
        pg.page.click("#draw-pad button[data-action='clear']")
        pg.settle()
        assert pg.state("last") is None
        assert pg.state("handwriting") is None and pg.page.inner_text("#encode-handwriting") == "", "blank: no measures"
        assert pg.page.locator("#encode-recon .vd-frame.vd-empty").count() == 1, "the placeholder is back"
        assert pg.page.evaluate("() => { const c = document.querySelector('#draw-pad canvas'); const d = "
                                "c.getContext('2d').getImageData(0, 0, c.width, c.height).data; "
                                "return d.some((v, i) => i % 4 === 3 && v > 0); }") is False, "the pad is blank"
        assert pg.page.locator(".toast-body, .toast-wrap .error").count() == 0, "no error toast"
        before = pg.state("updates")
        pg.draw_mouse(DIGIT_STROKES[7])  # the pad still draws, with the pen
        pg.settle()
        assert pg.state("updates") > before and pg.state("last") is not None
        assert not pg.errors, pg.errors


def test_falls_back_to_the_server_without_webassembly(browser):
    with Page(browser, init_script="delete globalThis.WebAssembly;") as pg:
        assert pg.state("runtime") == "server"
        assert "server" in pg.page.inner_text("#draw-live .vd-notice").lower()
        pg.draw_mouse(DIGIT_STROKES[3])
        pg.settle()
        assert pg.state("serverRequests") >= 1 and pg.state("updates") >= 1
        assert _classify(pg.recon()) == 3
        last = pg.state("last")
        assert last["runtime"] == "server" and len(last["mean"]) == 20
        assert not [e for e in pg.errors if "WebAssembly" not in e], pg.errors


def test_model_choice_swaps_in_the_browser(browser):
    with Page(browser) as pg:
        pg.draw_mouse(DIGIT_STROKES[2])
        pg.settle()
        requests: list[str] = []
        pg.page.on("request", lambda r: requests.append(r.url))
        # the diagram: z = μ + σ·ε with the drawing's numbers; a new ε gives another z and another x̂
        flow = "() => [document.querySelector('.vf-flow').innerText, Array.from(document.querySelector(" \
               "'canvas[aria-label^=\"x̂\"]').getContext('2d').getImageData(0, 0, 28, 28).data)]"
        text_a, px_a = pg.page.evaluate(flow)
        assert "μ = (" in text_a and "ε = (" in text_a
        pg.page.click("#draw-live button[data-action='resample']")
        pg.settle()
        text_b, px_b = pg.page.evaluate(flow)
        assert text_a.split("ε = (")[1] != text_b.split("ε = (")[1] and px_a != px_b
        assert text_a.split("ε = (")[0] == text_b.split("ε = (")[0], "μ and σ stay: the drawing did not change"
        pg.page.select_option("#draw-live select[aria-label='Model']", "vae-z2")
        pg.page.wait_for_function("() => window.vaeDraw.last && window.vaeDraw.last.model === 'vae-z2'", timeout=30_000)
        pg.settle()
        assert len(pg.state("last")["mean"]) == 2
        # only static files (the model's graphs and codes), no API call
        assert not [u for u in requests if "/vh/" not in u], requests
        assert not pg.errors, pg.errors


def test_image_read_back_is_the_page_input(browser):
    """The input canvas shows exactly the 28×28 the model saw (the page's own preprocessing)."""
    with Page(browser) as pg:
        pg.draw_mouse(DIGIT_STROKES[0])
        pg.settle()
        x = np.asarray(pg.state("last")["x"], np.float32).reshape(28, 28)
        shown = pg.page.evaluate("() => Array.from(document.querySelector('#encode-input canvas').getContext('2d')"
                                 ".getImageData(0, 0, 28, 28).data)")
        shown = np.asarray(shown, np.float32).reshape(28, 28, 4)[:, :, 0] / 255
        assert np.abs(shown - x).max() <= 1 / 255 + 1e-6
        img = Image.open(io.BytesIO(base64.b64decode(pg.page.evaluate(
            "() => document.querySelector('#draw-pad canvas').toDataURL('image/png')").split(",", 1)[1])))
        assert img.size == (280, 280)


def _explore(pg: Page) -> None:
    pg.page.get_by_role("tab", name="Latent explorer").click()
    pg.page.wait_for_selector(".vx-root[data-ready='1']", timeout=60_000)


def _hover(pg: Page, selector: str, u: float, v: float) -> None:
    box = pg.page.locator(selector).bounding_box()
    pg.page.mouse.move(box["x"] + u * box["width"], box["y"] + v * box["height"], steps=8)
    pg.page.wait_for_function("() => !window.vaeExplore.app.busy && !window.vaeExplore.app.queued", timeout=30_000)


def _is_api_call(url: str) -> bool:
    """A request that computes on the server (an endpoint, the queue, a panel's server function), as opposed
    to fetching a file (gradio_api/file=…, static assets)."""
    path = url.split("?", 1)[0]
    return any(k in path for k in ("/gradio_api/queue/", "/gradio_api/call/", "/gradio_api/run/", "/run/predict",
                                   "/gradio_api/api/", "/gradio_api/component_server", "/predict", "/vh-call/"))


def _point(pg: Page) -> np.ndarray:
    px = pg.page.evaluate("() => Array.from(document.querySelector('.vx-point').getContext('2d')"
                          ".getImageData(0, 0, 28, 28).data)")
    return np.asarray(px, np.float32).reshape(28, 28, 4)[:, :, 0] / 255


def test_latent_explorer_decodes_under_the_cursor(browser):
    """Hovering the map decodes in the browser (no API call), the same z the server decodes; the grid links."""
    from gradio_client import Client

    with Page(browser) as pg:
        _explore(pg)
        assert pg.page.evaluate("() => window.vaeExplore.runtime") == "browser"
        # the tab's pictures load lazily (gradio_api/file=…): let them finish before listening
        pg.page.wait_for_function("() => Array.from(document.images).every((i) => i.complete)", timeout=60_000)
        requests: list[str] = []
        pg.page.on("request", lambda r: requests.append(r.url) if _is_api_call(r.url) else None)
        before = pg.page.evaluate("() => window.vaeExplore.decodes")
        _hover(pg, ".vx-map", 0.30, 0.45)
        z_a, img_a = pg.page.evaluate("() => window.vaeExplore.z"), _point(pg)
        _hover(pg, ".vx-map", 0.75, 0.35)
        z_b, img_b = pg.page.evaluate("() => window.vaeExplore.z"), _point(pg)
        assert pg.page.evaluate("() => window.vaeExplore.decodes") > before + 2
        assert not requests, f"hovering called the server: {requests}"
        assert z_a[0] < z_b[0] and np.abs(img_a - img_b).mean() > 0.02, "a different point decodes differently"
        # the server decodes the same z to the same picture (up to the 8-bit canvas)
        server = Client(space_url(), verbose=False)
        pic = server.predict("vae-z2", z_b[0], z_b[1], api_name="/decode_point")[0]
        ref = np.asarray(Image.open(pic).convert("L"), np.float32)
        k = ref.shape[0] // 28
        assert np.abs(ref[k // 2::k, k // 2::k][:28, :28] / 255 - img_b).max() < 0.02
        _hover(pg, ".vx-grid", 0.2, 0.8)  # the grid's lower left is z₁ < 0, z₂ < 0
        z_c = pg.page.evaluate("() => window.vaeExplore.z")
        assert z_c[0] < 0 and z_c[1] < 0
        # the prior's holes, counted: seeded draws from each source on the map; about 5% of the density's own draws
        # fall below its 5th percentile at the test codes (a wrong density or floor would not)
        pg.page.wait_for_function("() => window.vaeExplore.holes", timeout=30_000)
        holes = pg.page.evaluate("() => window.vaeExplore.holes")
        assert holes["draws"] == 150 and 1 <= holes["density"] <= 20 and 0 <= holes["prior"] <= 150, holes
        assert f"{holes['prior']} of the 150 prior draws" in pg.page.inner_text(".vx-holes")
        assert not pg.errors, pg.errors


def test_latent_explorer_3d_slider_and_server_fallback(browser):
    with Page(browser, init_script="delete globalThis.WebAssembly;") as pg:
        _explore(pg)
        assert pg.page.evaluate("() => window.vaeExplore.runtime") == "server"
        pg.page.select_option("#explore-live select[aria-label='Model']", "vae-z3")
        pg.page.wait_for_function("() => window.vaeExplore.z && window.vaeExplore.z.length === 3", timeout=30_000)
        before = _point(pg)
        pg.page.evaluate("() => { const s = document.querySelector('#explore-live input[aria-label=\"z₃\"]'); "
                         "s.value = '2.5'; s.dispatchEvent(new Event('input')); }")
        pg.page.wait_for_function("() => window.vaeExplore.z[2] === 2.5 && !window.vaeExplore.app.busy", timeout=30_000)
        assert np.abs(_point(pg) - before).mean() > 0.01, "moving z₃ re-decodes the point"
        assert not [e for e in pg.errors if "WebAssembly" not in e], pg.errors


def test_generate_tab_new_samples_each_press_and_alt_text(browser):
    # as the app's page links to it: Gradio's page, opened on the tab
    opened = "button[role='tab'][aria-selected='true']:has-text('Generate')"
    with Page(browser, path="?ui=gradio&tab=generate", ready=opened) as pg:
        imgs = "() => Array.from(document.querySelectorAll('.block img')).filter(i => i.src.includes('gradio_api/file'))"
        pg.page.wait_for_function(f"() => ({imgs})().length >= 3", timeout=60_000)
        alts = pg.page.evaluate(f"() => ({imgs})().map(i => i.alt)")
        assert all(alts), f"output images without alt text: {alts}"
        seed = pg.page.locator("input[aria-label='Seed (Enter to reuse)']")
        src = "() => document.querySelector('img[alt=\"Samples\"]').src"
        seeds, srcs = [], []
        for _ in range(2):
            before = pg.page.evaluate(src)
            pg.page.get_by_role("button", name="Sample", exact=True).click()
            pg.page.wait_for_function(f"() => ({src})() !== {before!r}", timeout=30_000)
            seeds.append(seed.input_value())
            srcs.append(pg.page.evaluate(src))
        assert seeds[0] != seeds[1], "each press draws a new seed"
        # the Samples slider moved with the keyboard alone (no mouse release) draws again
        before = pg.page.evaluate(src)
        pg.page.get_by_role("slider", name="range slider for Samples", exact=True).focus()
        pg.page.keyboard.press("ArrowRight")
        pg.page.wait_for_function(f"() => ({src})() !== {before!r}", timeout=30_000)
        assert "/work/" not in pg.page.inner_text("body") and "/root/" not in pg.page.inner_text("body"), \
            "no server paths on the page"


def test_gradio_page_interpolate_and_beta_are_the_page_views_with_one_pad(browser):
    """Gradio's page (?ui=gradio) runs the app page's own Interpolate and β views (no Gradio pads of their own: the
    drawing made on Draw & encode is their "my drawing"), computed in the browser; its API stays on hidden components."""
    with Page(browser, path="?ui=gradio") as pg:
        pg.draw_mouse(DIGIT_STROKES[7])
        pg.settle()
        for tab, root in (("Interpolate", "#interp-live .vi-root"), ("β comparison", "#beta-live .vb-root")):
            pg.page.get_by_role("tab", name=tab).click()
            pg.page.wait_for_selector(f"{root}[data-ready='1']", timeout=120_000)
            assert not [i for i in range(pg.page.locator(".vae-pad").count()) if pg.page.locator(".vae-pad").nth(i).is_visible()]
        n = pg.page.evaluate("() => window.vaeBetaPage.decodes")
        pg.page.select_option("#beta-live select[aria-label='Input']", "my drawing")
        pg.page.wait_for_function(f"() => window.vaeBetaPage.decodes > {n} && window.vaeBetaPage.picked === null "
                                  "&& !window.vaeBetaPage.app.busy", timeout=60_000)
        assert "your drawing" in pg.page.inner_text("#beta-live")
        assert not pg.errors, pg.errors


def test_first_strokes_are_answered_by_the_server_until_the_runtime_arrives(browser):
    """The runtime's WebAssembly held back (a slow first visit): the pad is live at once, the server answers, and
    the page switches to its own runtime when the binary arrives; the numbers are the same either way."""
    held = []
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.route("**/ort-wasm-simd-threaded.wasm", lambda route: held.append(route))
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(space_url())
        page.wait_for_selector("#draw-pad[data-live='1']", timeout=120_000)
        pg = Page.__new__(Page)  # the helpers of Page, on this page
        pg.context, pg.page, pg.errors = context, page, errors
        pg.canvas = page.locator("#draw-pad canvas")
        pg.draw_mouse(DIGIT_STROKES[7])
        pg.settle()
        assert held, "the runtime's binary was asked for"
        assert pg.state("runtime") == "server" and pg.state("firstRuntime") == "server"
        assert pg.state("serverRequests") >= 1 and page.get_attribute("#draw-pad", "data-ready") is None
        by_server = pg.state("last")
        assert _classify(pg.recon()) == 7
        for route in held:
            route.continue_()
        page.wait_for_selector("#draw-pad[data-ready='1']", timeout=120_000)
        assert pg.state("runtime") == "browser"
        sent = pg.state("serverRequests")
        page.evaluate("() => window.vaeDraw.app.request(performance.now(), true)")  # the same drawing, in the page
        pg.settle()
        in_page = pg.state("last")
        assert pg.state("serverRequests") == sent and in_page["runtime"] == "browser" and by_server["runtime"] == "server"
        np.testing.assert_allclose(in_page["mean"], by_server["mean"], atol=1e-3)
        np.testing.assert_allclose(in_page["sigma"], by_server["sigma"], atol=1e-3)
        assert abs(in_page["elbo"] - by_server["elbo"]) < 0.1
        assert [n["test_index"] for n in in_page["neighbours"]] == [n["test_index"] for n in by_server["neighbours"]]
        assert not errors, errors
    finally:
        context.close()


def _wire(context, page) -> dict[str, dict]:
    """Every request of the page with its bytes on the wire (CDP encodedDataLength; 0 from the cache)."""
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    seen: dict[str, dict] = {}
    cdp.on("Network.requestWillBeSent", lambda e: seen.__setitem__(e["requestId"], {"url": e["request"]["url"], "bytes": 0}))
    cdp.on("Network.loadingFinished",
           lambda e: seen.get(e["requestId"], {}).__setitem__("bytes", e["encodedDataLength"]))
    return seen


def test_a_second_visit_downloads_nothing_again_and_no_url_shows_a_server_path(browser):
    import os

    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    loaded = "() => window.vaeDraw && window.vaeDraw.ready"  # the pictures wait for a drawing's neighbours
    try:
        first = context.new_page()
        wire1 = _wire(context, first)
        first.goto(space_url())
        first.wait_for_function(loaded, timeout=120_000)
        first.wait_for_timeout(500)
        text = first.inner_text("body")
        first.close()
        second = context.new_page()
        wire2 = _wire(context, second)
        second.goto(space_url())
        second.wait_for_function(loaded, timeout=120_000)
        second.wait_for_timeout(500)
        ours = [r for r in wire1.values() if "/vh/" in r["url"]]
        names = {r["url"].rsplit("/", 1)[-1] for r in ours}
        assert {"ort-wasm-simd-threaded.wasm", "encoder.onnx", "decoder.onnx", "draw.js", "codes.safetensors",
                "test_labels.safetensors"} <= names, names
        assert not [n for n in names if n.startswith("test_digits")], "no pictures before a drawing needs them"
        again = [r for r in wire2.values() if "/vh/" in r["url"] and r["bytes"]]
        assert not again, f"downloaded twice: {again}"
        assert sum(r["bytes"] for r in wire2.values()) < 256 * 1024, "a repeat visit costs the page's HTML and API calls"
        # no path of the server's file system in any URL the page asked for, nor in its text
        paths = [str(ROOT), str(Path.home()) + "/", os.environ.get("VAE_HUB_CACHE") or str(Path.home() / ".cache")]
        urls = [r["url"] for r in [*wire1.values(), *wire2.values()]]
        assert not [(p, u) for p in paths for u in urls if p in u]
        assert not [p for p in paths if p in text]
    finally:
        context.close()


def test_generate_in_the_page_draws_from_the_prior_and_the_density(browser):
    """The app's Generate view: a seed gives the same codes again and another seed others; the keyboard moves the
    count; the pictures are the model's decoder applied to the codes shown (torch decodes them the same)."""
    import vae_hub

    with Page(browser, path="#generate", ready=".vg-root[data-ready='1']") as pg:
        state = "() => { const s = window.vaeGenerate; return {seed: s.seed, model: s.model, z: s.z, n: s.app.n, " \
                "prior: Array.from(s.app.images.prior), density: Array.from(s.app.images.density)}; }"
        idle = "() => !window.vaeGenerate.app.busy && window.vaeGenerate.decodes > {}"
        a = pg.page.evaluate(state)
        assert a["model"] == "vae-z20" and a["n"] == 36 and len(a["z"]["prior"]) == len(a["z"]["density"]) == 36 * 20
        model = vae_hub.load("vae-z20")
        with torch.inference_mode():
            for source in ("prior", "density"):
                z = torch.tensor(a["z"][source], dtype=torch.float32).view(36, 20)
                ref = torch.sigmoid(model.decode(z)).flatten().numpy()
                assert np.abs(np.asarray(a[source]) - ref).max() < 1e-3, source
        # the density's codes sit where the training codes do: closer to the test codes than the prior's
        mu = torch.from_numpy(np.asarray(pg.page.evaluate(
            "async () => { const s = window.vaeGenerate.app, c = await s.backend.loadCodes('vae-z20'); "
            "return Array.from(c.mu); }"), np.float32)).view(-1, 20)
        near = {s: float(torch.cdist(torch.tensor(a["z"][s]).view(36, 20).float(), mu).min(1).values.mean())
                for s in ("prior", "density")}
        assert near["density"] < near["prior"], near
        n = pg.page.evaluate("() => window.vaeGenerate.decodes")
        pg.page.click(".vg-root button[data-action='sample']")
        pg.page.wait_for_function(idle.replace("{}", str(n)), timeout=30_000)
        b = pg.page.evaluate(state)
        assert b["seed"] != a["seed"] and b["z"]["prior"] != a["z"]["prior"]
        n = pg.page.evaluate("() => window.vaeGenerate.decodes")
        pg.page.fill(".vg-root input[aria-label='Seed']", str(a["seed"]))
        pg.page.press(".vg-root input[aria-label='Seed']", "Enter")
        pg.page.wait_for_function(idle.replace("{}", str(n)), timeout=30_000)
        assert pg.page.evaluate(state)["z"] == a["z"], "the same seed draws the same codes"
        # the class-conditional digits: the same styles decoded as each digit, as torch's cvae decodes them
        cond = pg.page.evaluate("() => window.vaeGenerate.conditional")
        assert cond["digits"] == list(range(10)) and cond["styles"] == 8
        cvae = vae_hub.load("cvae")
        with torch.inference_mode():
            z = torch.tensor(cond["z"], dtype=torch.float32).view(8, -1).repeat(10, 1)
            ref = torch.sigmoid(cvae.decode(z, torch.arange(10).repeat_interleave(8))).flatten().numpy()
        assert np.abs(np.asarray(cond["images"]) - ref).max() < 1e-3
        n = pg.page.evaluate("() => window.vaeGenerate.decodes")
        pg.page.select_option(".vg-root select[aria-label='Digit']", "4")
        pg.page.wait_for_function(idle.replace("{}", str(n)), timeout=30_000)
        assert pg.page.evaluate("() => window.vaeGenerate.conditional.digits") == [4]
        n = pg.page.evaluate("() => window.vaeGenerate.decodes")
        pg.page.focus(".vg-root input[aria-label='Samples']")
        pg.page.keyboard.press("ArrowRight")
        pg.page.wait_for_function(idle.replace("{}", str(n)), timeout=30_000)
        assert pg.page.evaluate(state)["n"] == 37
        assert not pg.errors, pg.errors


def test_models_in_the_page_show_a_card_its_metrics_and_figures(browser):
    with Page(browser, path="#models", ready=".vm-root[data-ready='1']") as pg:
        pg.page.select_option(".vm-root select[aria-label='Variant']", "vae-z2")
        pg.page.wait_for_function("() => window.vaeModels.variant === 'vae-z2'")
        card = pg.page.inner_text(".vm-card")
        assert "vae-z2" in card and "Training recipe" in card
        assert "vae_hub.load(\"vae-hub/vae-hub-vae-z2\")" in pg.page.inner_text(".vm-side")
        assert "test loss" in pg.page.inner_text(".vm-metrics")
        srcs = pg.page.eval_on_selector_all(".vm-fig img", "(imgs) => imgs.map((i) => i.getAttribute('src'))")
        assert len(srcs) >= 5 and all("/vh/" in s for s in srcs), srcs
        first = pg.page.locator(".vm-fig img").first
        first.scroll_into_view_if_needed()
        pg.page.wait_for_function("() => document.querySelector('.vm-fig img').naturalWidth > 0", timeout=30_000)
        assert first.bounding_box()["width"] <= 1000, "one figure a row, at the page's width"
        assert not pg.errors, pg.errors


def check_interpolation(pg: Page) -> None:
    """The Interpolate view as opened (two test digits, vae-z20): its endpoints' codes and its strip are the model's,
    and its latent arithmetic and style transfer (the class-conditional model) are what torch computes: the numbers
    the Gradio Space's API gives."""
    from safetensors.numpy import load_file

    import vae_hub

    digits = load_file(str(ROOT / "space" / "assets" / "test_digits.safetensors"))["images"].astype(np.float32) / 255
    model = vae_hub.load("vae-z20")
    s = pg.page.evaluate("() => { const s = window.vaeInterpolate; return {z: s.z, picks: s.picks, strip: s.strip}; }")
    ia, ib = s["picks"]
    x = torch.from_numpy(digits[[ia, ib]])
    with torch.inference_mode():
        mean = model.encode(x).mean
        np.testing.assert_allclose(s["z"]["a"], mean[0], atol=1e-3)
        np.testing.assert_allclose(s["z"]["b"], mean[1], atol=1e-3)
        first = torch.sigmoid(model.decode(torch.tensor([s["z"]["a"]]))).flatten().numpy()
    assert np.abs(np.asarray(s["strip"][:784]) - first).max() < 1e-3, "the strip starts at A"
    pg.page.wait_for_function("() => window.vaeInterpolate.style && !window.vaeInterpolate.app.more.busy", timeout=60_000)
    ar, st = pg.page.evaluate("() => [window.vaeInterpolate.arithmetic, window.vaeInterpolate.style]")
    with torch.inference_mode():
        res = torch.tensor(ar["z"][0]) - torch.tensor(ar["z"][1]) + torch.tensor(ar["z"][2])
        np.testing.assert_allclose(ar["result"], res, atol=1e-5)
        ref = torch.sigmoid(model.decode(res[None].float())).flatten().numpy()
        assert np.abs(np.asarray(ar["image"]) - ref).max() < 1e-3
        cvae = vae_hub.load("cvae")
        x7, y7 = torch.from_numpy(digits[[st["index"]]]), torch.tensor([st["label"]])
        code = cvae.encode(x7, y7).mean
        np.testing.assert_allclose(st["code"], code[0], atol=1e-3)
        ref = torch.sigmoid(cvae.decode(code.repeat(10, 1), torch.arange(10))).flatten().numpy()
    assert st["label"] == 7 and np.abs(np.asarray(st["images"]) - ref).max() < 1e-3


def test_interpolate_in_the_page_encodes_paths_and_takes_my_drawing(browser):
    """The app's Interpolate view: its endpoints' codes and its frames are the model's (torch gives the same); the
    scrubber decodes the point at t; the drawing made on the Draw tab is an endpoint."""
    with Page(browser) as pg:
        pg.draw_mouse(DIGIT_STROKES[7])
        pg.settle()
        drawn = pg.state("last")
        pg.page.get_by_role("tab", name="Interpolate").click()
        pg.page.wait_for_selector(".vi-root[data-ready='1']", timeout=60_000)
        check_interpolation(pg)
        s = pg.page.evaluate("() => window.vaeInterpolate")
        pg.page.evaluate("() => { const s = document.querySelector('.vi-root input[aria-label^=\"t:\"]'); s.value = '0.25'; "
                         "s.dispatchEvent(new Event('input')); }")
        pg.page.wait_for_function("() => window.vaeInterpolate.t === 0.25 && !window.vaeInterpolate.app.busy")
        at = pg.page.evaluate("() => window.vaeInterpolate.at")
        np.testing.assert_allclose(at["linear"], 0.75 * np.asarray(s["z"]["a"]) + 0.25 * np.asarray(s["z"]["b"]), atol=1e-6)
        # another model: the paths and the arithmetic are computed with it (the choice is read before either runs)
        n = pg.page.evaluate("() => window.vaeInterpolate.decodes")
        pg.page.select_option(".vi-root select[aria-label='Model']", "vae-z2")
        pg.page.wait_for_function(f"() => window.vaeInterpolate.decodes > {n} && !window.vaeInterpolate.app.busy "
                                  "&& !window.vaeInterpolate.app.more.busy")
        s2 = pg.page.evaluate("() => window.vaeInterpolate")
        assert s2["model"] == "vae-z2" and len(s2["z"]["a"]) == 2
        assert s2["arithmetic"]["model"] == "vae-z2" and len(s2["arithmetic"]["result"]) == 2
        pg.page.select_option(".vi-root select[aria-label='Model']", "vae-z20")
        n = pg.page.evaluate("() => window.vaeInterpolate.decodes")
        pg.page.select_option(".vi-root select[aria-label='Endpoint A']", "my drawing")
        pg.page.wait_for_function(f"() => window.vaeInterpolate.decodes > {n} && !window.vaeInterpolate.app.busy")
        z = pg.page.evaluate("() => window.vaeInterpolate.z")
        np.testing.assert_allclose(z["a"], drawn["mean"], atol=1e-5)
        assert "your drawing" in pg.page.inner_text(".vi-ends")
        assert not pg.errors, pg.errors


CELLS = "(sel) => Array.from(document.querySelectorAll(sel)).map((c) => " \
        "Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data).filter((_, i) => i % 4 === 0))"


def check_beta(pg: Page) -> None:
    """The β view as opened: each β-VAE's code and KL per dimension for the input are torch's (the Gradio Space's
    API numbers); at rest the sweep shows each model's reconstruction."""
    from safetensors.numpy import load_file

    import vae_hub
    from vae_hub.model.distributions import kl_per_dim

    digits = load_file(str(ROOT / "space" / "assets" / "test_digits.safetensors"))["images"].astype(np.float32) / 255
    s = pg.page.evaluate("() => { const s = window.vaeBetaPage; return {picked: s.picked, results: s.results}; }")
    assert set(s["results"]) == {"beta-vae-b0.5", "beta-vae-b1", "beta-vae-b2", "beta-vae-b4", "beta-vae-b8"}
    x = torch.from_numpy(digits[[s["picked"]]])
    for name in ("beta-vae-b1", "beta-vae-b8"):
        model = vae_hub.load(name)
        with torch.inference_mode():
            post = model.encode(x)
            kl = kl_per_dim(post, model.prior)[0][0].numpy()
        np.testing.assert_allclose(s["results"][name]["mean"], post.mean[0], atol=1e-3)
        np.testing.assert_allclose(s["results"][name]["kl"], kl, atol=1e-3)
    recon = np.asarray(pg.page.evaluate(CELLS, "canvas[aria-label$=': reconstruction']"), np.float32)
    swept = np.asarray(pg.page.evaluate(CELLS, "canvas[aria-label$=' swept']"), np.float32)
    assert recon.shape == swept.shape == (5, 784) and np.abs(recon - swept).max() <= 1, "at rest: the reconstructions"


def test_beta_comparison_in_the_page_matches_the_models_and_sweeps_from_the_input(browser):
    """The app's β view: each β-VAE's code and KL per dimension for the input are torch's; at rest the sweep shows
    each model's reconstruction; a shift changes the small-β model's picture."""
    with Page(browser, path="#beta", ready=".vb-root[data-ready='1']") as pg:
        check_beta(pg)
        swept = np.asarray(pg.page.evaluate(CELLS, "canvas[aria-label$=' swept']"), np.float32)
        pg.page.evaluate("() => { const s = document.querySelector('.vb-root input[type=range]'); s.value = '2.5'; "
                         "s.dispatchEvent(new Event('input')); }")
        pg.page.wait_for_function("() => window.vaeBetaPage.value === 2.5 && !window.vaeBetaPage.app.busy")
        moved = np.abs(np.asarray(pg.page.evaluate(CELLS, "canvas[aria-label$=' swept']"), np.float32) - swept).mean(1) / 255
        assert moved[0] > 0.01, moved
        assert "≈" in pg.page.inner_text(".vb-rows"), "dimensions named by the factor they carry"
        assert not pg.errors, pg.errors


SMALLEST = """() => { let min = 99, where = "";
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const e = n.parentElement;
    if (!n.textContent.trim() || !e || e.closest("[hidden], option, script, style, [popover]")) continue;
    const r = e.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    const px = parseFloat(getComputedStyle(e).fontSize);
    if (px < min) { min = px; where = n.textContent.trim().slice(0, 40); }
  }
  return [min, where]; }"""


def test_no_text_on_any_tab_of_the_app_page_is_smaller_than_11px(browser):
    """Every tab of the app's page, opened as a visitor would, at 1440×900 and on a 390×844 phone: the smallest
    text shown (canvases draw theirs at paint.TEXT_PX = 12 or more)."""
    tabs = ["Draw & encode", "Interpolate", "β comparison", "Latent explorer", "Generate", "Models"]
    ready = {"Interpolate": ".vi-root", "β comparison": ".vb-root", "Latent explorer": ".vx-root", "Generate": ".vg-root",
             "Models": ".vm-root"}
    for size in ({"width": 1440, "height": 900}, {"width": 390, "height": 844}):
        with Page(browser) as pg:
            pg.page.set_viewport_size(size)
            found = {}
            for tab in tabs:
                pg.page.get_by_role("tab", name=tab).click()
                if tab in ready:
                    pg.page.wait_for_selector(f"{ready[tab]}[data-ready='1']", timeout=60_000)
                found[tab] = pg.page.evaluate(SMALLEST)
            small = {t: f for t, f in found.items() if f[0] < 11}
            assert not small, f"{size}: {small}"
            assert not pg.errors, pg.errors


CANVASES = """(root) => { let h = 0;
  for (const c of document.querySelector(root).querySelectorAll("canvas")) {
    if (!c.width || !c.height || !c.offsetParent) continue;
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 53) h = (h * 31 + d[i]) | 0;
  }
  return h; }"""


def test_every_slider_of_the_app_page_takes_the_keyboard(browser):
    """Every slider on every tab of the app's page, moved with the arrow keys alone (no mouse, no release): its
    view draws again (the pictures change)."""
    tabs = {"Interpolate": "#interpolate-live", "β comparison": "#beta-live", "Latent explorer": "#explore-live",
            "Generate": "#generate-live"}
    moved = []
    with Page(browser) as pg:
        for tab, root in tabs.items():
            pg.page.get_by_role("tab", name=tab).click()
            pg.page.wait_for_selector(f"{root} .vh-root[data-ready='1']", timeout=60_000)
            sliders = pg.page.locator(f"{root} input[type=range]")
            for i in range(sliders.count()):
                s = sliders.nth(i)
                if not s.is_visible():
                    continue
                pg.page.wait_for_timeout(300)  # the view at rest
                before = pg.page.evaluate(CANVASES, root)
                s.focus()
                at_max = s.evaluate("(e) => +e.value >= +e.max")
                pg.page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
                pg.page.wait_for_function(f"([f, h]) => (0, eval)(f)({root!r}) !== h", arg=[CANVASES, before],
                                          timeout=30_000, polling=250)
                moved.append(f"{tab}: {s.get_attribute('aria-label')}")
        assert len(moved) >= 5, moved  # frames, t, shift, samples, styles at least
        assert not pg.errors, pg.errors

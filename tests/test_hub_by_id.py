"""Any model from the Hub by its id, in the browser (web/hubmodel.js): the static site, its manifest's ``hub`` pointed
at the project's Hub stand-in (tests/hub_server.py, with CORS headers) on another origin, in headless Chromium.

- ``?model=testns/vae-hub-vae-z3`` (pushed by ``train.py --push-only`` with its ONNX graphs; the site bundles only
  vae-z2): the page fetches config.json and both graphs from the resolve URLs, encodes the 4,000 test digits itself,
  opens Draw & encode (and Interpolate) on it; its codes of the test digits and of a drawn 7 equal the Python model's within 1e-3,
  the ELBOs within 0.01 nat, and the drawing gets a percentile, neighbours and the map;
- the Models tab's field: a repo pushed without ONNX graphs, one whose encoder.onnx is over the cap (refused by its
  Content-Length, never downloaded), one with the graphs swapped, a class-conditional one, a missing one, a malformed
  id: each one line naming the problem and what is expected, and the page keeps working; then a good one, "Draw with it";
- ``?model=`` of a repo without ONNX graphs: the line above the tabs says so and Draw opens on the bundled model.

Every request stays on the site or goes to the stand-in's resolve URLs. Not covered (the stand-in answers every
file itself): the real Hub's redirects of LFS/Xet files to its CDN or the cas bridge and their CORS headers, gated and
private repos, rate limits, revisions other than main (see web/hubmodel.js).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import vae_hub
from vae_hub.hub.onnx import export_onnx

from .conftest import ROOT
from .hub_server import FakeHub, Repo

# the subprocesses too: an editable install elsewhere must not stand in for this checkout's vae_hub and vae_space
PYTHONPATH = os.pathsep.join([str(ROOT), str(ROOT / "space")])

NS = "testns"
GOOD, NO_ONNX = f"{NS}/vae-hub-vae-z3", f"{NS}/vae-hub-vae-z2"
BIG, SWAPPED, COND = f"{NS}/vae-hub-big", f"{NS}/vae-hub-swapped", f"{NS}/vae-hub-cvae"
MODEL_FILES = ("config.json", "model.safetensors", "history.json", "README.md")  # a complete folder (folders.COMPLETE)
SCREENSHOTS = Path(os.environ.get("VAE_HUB_SCREENSHOTS", "/tmp"))


@pytest.fixture(scope="module")
def hub():
    with FakeHub() as h:
        yield h


def _folder(variant: str, out: Path) -> Path:
    (out / variant).mkdir(parents=True)
    for name in MODEL_FILES:
        shutil.copyfile(ROOT / "pretrained" / variant / name, out / variant / name)
    return out / variant


@pytest.fixture(scope="module")
def repos(hub, tmp_path_factory) -> dict[str, Path]:
    """vae-z3 with its ONNX graphs and vae-z2 without, pushed by train.py through huggingface_hub's client; three
    broken repos written into the stand-in directly (no client makes them: that is the point)."""
    tmp = tmp_path_factory.mktemp("repos")
    z3, z2 = _folder("vae-z3", tmp / "push"), _folder("vae-z2", tmp / "push")
    graphs = export_onnx(vae_hub.load(z3), z3)
    env = {k: v for k, v in os.environ.items() if k not in ("VAE_HUB_NAMESPACE", "HF_HUB_CACHE")}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(tmp / "hf"), HF_TOKEN="dummy-token",
               HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=PYTHONPATH)
    r = subprocess.run([sys.executable, "train.py", "--push-only", str(tmp / "push"), "--push-to-hub", NS], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    _, files = hub.repos[GOOD].snapshot("main")
    assert {"encoder.onnx", "decoder.onnx", "config.json"} <= set(files), sorted(files)
    assert "encoder.onnx" not in hub.repos[NO_ONNX].snapshot("main")[1]
    enc, dec = graphs["encoder"].read_bytes(), graphs["decoder"].read_bytes()
    cfg = (z3 / "config.json").read_bytes()
    broken = {BIG: {"config.json": cfg, "encoder.onnx": b"\0" * (65 * 2**20), "decoder.onnx": dec},
              SWAPPED: {"config.json": cfg, "encoder.onnx": dec, "decoder.onnx": enc},
              COND: {"config.json": (ROOT / "pretrained" / "cvae" / "config.json").read_bytes(), "encoder.onnx": enc,
                     "decoder.onnx": dec}}
    for repo_id, content in broken.items():
        hub.repos[repo_id] = Repo()
        hub.repos[repo_id].commit(content, "written by the test")
    return {GOOD: z3, NO_ONNX: z2}


@pytest.fixture(scope="module")
def site(hub, tmp_path_factory):
    """The static site with one bundled model (vae-z2: the map model; quick to build), its manifest's hub the stand-in."""
    tmp = tmp_path_factory.mktemp("site")
    (tmp / "weights").mkdir()
    (tmp / "weights" / "vae-z2").symlink_to(ROOT / "pretrained" / "vae-z2")
    out = tmp / "out"
    r = subprocess.run([sys.executable, "-m", "vae_space.static", str(out), "--weights", str(tmp / "weights")],
                       cwd=ROOT / "space", env={**os.environ, "HF_ENDPOINT": hub.url, "PYTHONPATH": PYTHONPATH},
                       capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hub"] == hub.url and list(manifest["models"]) == ["vae-z2"]
    handler = functools.partial(_Quiet, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class Page:
    """One visit, its console errors and every URL it asked for collected."""

    def __init__(self, browser, url: str, ready: str = "#draw-pad[data-ready='1']"):
        self.context = browser.new_context(viewport={"width": 1440, "height": 1000})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url)
        self.page.wait_for_selector(ready, timeout=90_000)

    def settle(self) -> None:
        self.page.wait_for_function("() => { const a = window.vaeDraw.app; return !a.busy && !a.dirty && "
                                    "a.pending === null && !a.scheduled; }", timeout=30_000)

    def unexpected_errors(self) -> list[str]:
        """Console errors, less Chromium's line for each 404 of the Hub a test asks for on purpose."""
        return [e for e in self.errors if "the server responded with a status of 404" not in e]

    def left_alone(self, *origins: str) -> list[str]:
        return [u for u in self.requests if not u.startswith((*origins, "blob:", "data:"))]

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc) -> None:
        self.context.close()


def _reference(folder: Path) -> tuple[vae_hub.VAE, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Python model, the test digits, their posterior means and deterministic ELBOs (as the Space's engine)."""
    import vae_space
    from vae_space.entries import TestDigits

    assert Path(vae_space.__file__).is_relative_to(ROOT) and Path(vae_hub.__file__).is_relative_to(ROOT)
    model = vae_hub.load(folder)
    x = TestDigits.load().x
    with torch.inference_mode():
        post = model.encode(x)
        elbo = -(model.recon_nll(model.decode(post.mean), x) + model.kl(post))
    return model, x, post.mean, elbo


def test_a_model_by_its_id_runs_in_the_page_with_the_python_models_codes(repos, site, hub, browser):
    n_before = len(hub.requests)
    with Page(browser, f"{site}?model={GOOD}") as pg:
        p = pg.page
        assert p.evaluate("() => window.vaeDraw.model") == GOOD
        options = p.eval_on_selector_all(".vd-root select[aria-label='Model'] option", "os => os.map(o => o.value)")
        assert options == ["vae-z2", GOOD]
        assert "is loaded from the Hub" in p.inner_text(".vh-hub-status")
        assert "From the Hub (testns/vae-hub-vae-z3)" in p.inner_text(".vd-root .vh-about")

        model, x, mean, elbo = _reference(repos[GOOD])
        codes = p.evaluate("""async (name) => {
            const { loadCodes } = await import(new URL('web/data.js', document.baseURI).href);
            const c = await loadCodes(window.vaeDraw.app.m.models[name].codes);
            return { n: c.n, k: c.k, mu: Array.from(c.mu), elbo: Array.from(c.elboSorted) };
        }""", GOOD)
        assert (codes["n"], codes["k"]) == (len(x), 3)
        np.testing.assert_allclose(np.reshape(codes["mu"], (-1, 3)), mean.numpy(), atol=1e-3)
        np.testing.assert_allclose(codes["elbo"], np.sort(elbo.numpy()), atol=1e-2, rtol=1e-5)

        # a drawn 7 (the example's strokes on the pad, through the page's preprocessing)
        p.select_option(".vd-root select[aria-label='Start from an example']", "7")
        pg.settle()
        last = p.evaluate("() => window.vaeDraw.last")
        assert last["model"] == GOOD and last["runtime"] == "browser"
        xi = torch.tensor(last["x"], dtype=torch.float32).reshape(1, 1, 28, 28)
        with torch.inference_mode():
            post = model.encode(xi)
            ref_elbo = float(-(model.recon_nll(model.decode(post.mean), xi) + model.kl(post)))
        np.testing.assert_allclose(last["mean"], post.mean[0].numpy(), atol=1e-3)
        np.testing.assert_allclose(last["sigma"], post.stddev[0].numpy(), atol=1e-3)
        assert abs(last["elbo"] - ref_elbo) < 0.01
        pct = 100 * np.searchsorted(np.sort(elbo.numpy()), ref_elbo) / len(x)
        assert abs(last["elbo_percentile"] - pct) < 0.1
        assert len(last["neighbours"]) == 8 and all(n["label"] is not None for n in last["neighbours"])
        assert last["map_model"] == "vae-z2", "a 3-D model's drawing is placed on the 2-D model's map"
        p.wait_for_timeout(300)
        p.screenshot(path=str(SCREENSHOTS / "hub-draw.png"), full_page=True)
        # the other views open on it too
        p.get_by_role("tab", name="Interpolate").click()
        p.wait_for_selector(".vi-root[data-ready='1']", timeout=60_000)
        assert p.evaluate("() => [window.vaeInterpolate.model, window.vaeInterpolate.strip.length]") == [GOOD, 2 * 10 * 784]
        assert not pg.left_alone(site, hub.url), "a request left the site and the Hub"
        assert not pg.errors, pg.errors
    calls = {(m, path) for m, path, _ in hub.requests[n_before:]}
    for f in ("config.json", "encoder.onnx", "decoder.onnx"):
        assert ("GET", f"/{GOOD}/resolve/main/{f}") in calls, f
    assert all("/resolve/main/" in path for _, path in calls), calls


REFUSED = [
    (NO_ONNX, ["has no encoder.onnx or decoder.onnx", "python -m vae_hub.onnx FOLDER", "--push-to-hub NAMESPACE"]),
    (BIG, [f"{BIG}'s encoder.onnx is 65.0 MiB: more than the 64.0 MiB"]),
    (SWAPPED, [f"{SWAPPED}'s encoder.onnx takes [z] and gives [logits]: expected x (B, 1, 28, 28) -> mean, log_sigma"]),
    (COND, [f"{COND} is class-conditional", "only unconditional models load by id"]),
    (f"{NS}/vae-hub-nothing", [f"No public model repo {NS}/vae-hub-nothing on the Hub"]),
    ("../../etc/passwd", ['"../../etc/passwd" is not a Hub model id: expected NAMESPACE/NAME']),
]


def test_the_models_tab_refuses_each_bad_repo_in_one_line_then_loads_a_good_one(repos, site, hub, browser):
    n_before = len(hub.requests)
    with Page(browser, site) as pg:
        p = pg.page
        p.get_by_role("tab", name="Models").click()
        p.wait_for_selector(".vm-root[data-ready='1']", timeout=60_000)
        field, button, line = p.get_by_label("Hub model id"), p.get_by_role("button", name="Load from the Hub"), ".vm-hub-status"
        for repo_id, expected in REFUSED:
            field.fill(repo_id)
            button.click()
            p.wait_for_function("() => !window.vaeHubModel.loading && window.vaeHubModel.error", timeout=30_000)
            text = p.inner_text(line)
            assert all(e in text for e in expected), (repo_id, text)
            assert "\n" not in text.strip() and len(text) < 400, text
            p.evaluate("() => { window.vaeHubModel.error = null; }")
        big = [(m, path) for m, path, _ in hub.requests[n_before:] if path == f"/{BIG}/resolve/main/encoder.onnx"]
        assert big == [("HEAD", f"/{BIG}/resolve/main/encoder.onnx")], "the oversized graph is refused before its download"
        p.screenshot(path=str(SCREENSHOTS / "hub-models-error.png"))

        field.fill(GOOD)
        button.click()
        p.wait_for_function(f"() => window.vaeHubModel.loaded.includes({json.dumps(GOOD)})", timeout=60_000)
        assert "is loaded from the Hub" in p.inner_text(line)
        p.screenshot(path=str(SCREENSHOTS / "hub-models.png"))
        p.get_by_role("button", name="Draw with it").click()
        p.wait_for_function(f"() => window.vaeDraw?.modelReady === {json.dumps(GOOD)}", timeout=60_000)
        assert p.input_value(".vd-root select[aria-label='Model']") == GOOD
        p.select_option(".vd-root select[aria-label='Start from an example']", "3")
        pg.settle()
        assert p.evaluate("() => window.vaeDraw.last.model") == GOOD and len(p.evaluate("() => window.vaeDraw.last.mean")) == 3
        assert not pg.left_alone(site, hub.url)
        assert not pg.unexpected_errors(), pg.errors


def test_a_bad_model_param_is_one_line_and_the_page_opens_on_its_own_model(repos, site, browser):
    with Page(browser, f"{site}?model={NO_ONNX}") as pg:
        p = pg.page
        text = p.inner_text(".vh-hub-status")
        assert text.startswith(f"Not loaded: {NO_ONNX} has no encoder.onnx or decoder.onnx"), text
        assert p.evaluate("() => window.vaeDraw.model") == "vae-z2"
        p.select_option(".vd-root select[aria-label='Start from an example']", "7")
        pg.settle()
        assert p.evaluate("() => window.vaeDraw.last.model") == "vae-z2"
        p.screenshot(path=str(SCREENSHOTS / "hub-param-error.png"))
        assert not pg.unexpected_errors(), pg.errors

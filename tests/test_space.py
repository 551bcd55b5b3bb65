"""The Space's API contract through gradio_client: `python space/app.py` on 127.0.0.1 with the bundled weights,
every named endpoint called with synthesised drawings (its outputs' number, shapes and types), every kind of bad
input answered briefly, and the server's own hardening (queue, uploads, sessions, a clean stop).

The numbers the handlers answer are pinned in-process by tests/test_space_handlers.py, not again here. The app is
launched once per session (``space_url``) and shared with the browser tests. Expectations follow the app's own
/status: a variant still missing from pretrained/ must give a short gr.Error.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vae_hub.data.preprocess import DIGIT_STROKES, render_strokes

ROOT = Path(__file__).resolve().parent.parent

GENERIC = "has not enabled verbose error reporting"  # what a non-gr.Error exception looks like to the client
_server: dict = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def space_url(timeout: float = 180.0) -> str:
    """Launch `python space/app.py` once (bundled weights, offline) and return its URL."""
    if "url" not in _server:
        url, proc, log = launch_app(timeout=timeout)
        _server.update(url=url, proc=proc, log=log)
    return _server["url"]


def launch_app(args: tuple[str, ...] = (), env: dict | None = None, timeout: float = 180.0) -> tuple[str, subprocess.Popen, str]:
    """Start `python space/app.py ARGS` on a free port of 127.0.0.1; (URL, process, log file) once it answers."""
    port = _free_port()
    full = {k: v for k, v in os.environ.items() if k not in ("VAE_HUB_WEIGHTS", "VAE_HUB_NAMESPACE", "SPACE_ID")}
    full.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1",
                GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", **(env or {}))
    log = tempfile.NamedTemporaryFile("w+", prefix="space-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, str(ROOT / "space" / "app.py"), *args], cwd=ROOT, env=full, stdout=log,
                            stderr=subprocess.STDOUT)
    atexit.register(_stop, proc)
    url = f"http://127.0.0.1:{port}/"
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return url, proc, log.name
        except OSError:
            time.sleep(0.5)
    _stop(proc)
    raise RuntimeError(f"the app did not start (exit code {proc.poll()}); log {log.name}:\n" + Path(log.name).read_text()[-3000:])


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def client():
    from gradio_client import Client

    return Client(space_url(), verbose=False)


@pytest.fixture(scope="module")
def status(client) -> dict:
    s = client.predict(api_name="/status")
    # a variant still training when the app started is reported missing, with a reason
    assert s["source"] == "bundled" and set(s["loaded"]) | set(s["missing"]) >= {"vae-z2", "vae-z20"}
    return s


# ---------------------------------------------------------------------------- inputs
def _png(tmp: Path, name: str, arr: np.ndarray | Image.Image, fmt: str = "PNG") -> str:
    path = tmp / f"{name}.{fmt.lower()}"
    (arr if isinstance(arr, Image.Image) else Image.fromarray(arr)).save(path, format=fmt)
    return str(path)


def _pad(path: str | None) -> dict:
    """The sketchpad's value format: what the browser sends after a stroke (composite = what is seen)."""
    from gradio_client import handle_file

    return {"background": None, "layers": [], "composite": None if path is None else handle_file(path), "id": None}


@pytest.fixture(scope="module")
def drawings(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("drawings")
    out = {str(d): _pad(_png(tmp, f"d{d}", render_strokes(DIGIT_STROKES[d], (400, 400), 16))) for d in (1, 3, 7)}
    bad = {
        "empty": np.zeros((400, 400, 4), np.uint8),
        "white": np.full((400, 400, 3), 255, np.uint8),
        "dot": render_strokes([[(0.5, 0.5), (0.505, 0.5)]], (400, 400), 14),
        "filled": np.concatenate([np.zeros((400, 400, 3), np.uint8), np.full((400, 400, 1), 255, np.uint8)], 2),
        "photo": (np.random.default_rng(0).random((300, 500, 3)) * 255).astype(np.uint8),
        "huge": np.full((5000, 5000), 255, np.uint8),
        "tiny": np.zeros((4, 4, 4), np.uint8),
    }
    for k, v in bad.items():
        out[k] = _pad(_png(tmp, k, v))
    (tmp / "not-an-image.png").write_text("this is text")
    out["not-an-image"] = _pad(str(tmp / "not-an-image.png"))
    out["none"] = _pad(None)
    return out


def _img(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _app_error(fn, *args, **kwargs) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        fn(*args, **kwargs)
    msg = str(err.value.message if hasattr(err.value, "message") else err.value)
    assert GENERIC not in msg, "a bad input must give our short gr.Error, not a generic failure"
    assert "Traceback" not in msg and len(msg) < 240, msg
    return msg


# ---------------------------------------------------------------------------- 1. draw & encode
def test_encode_every_encoder(client, status, drawings):
    """/encode answers for every loaded encoder: seven outputs, five pictures, a summary and the numbers."""
    from vae_hub import get_config

    encoders = [m for m in ("vae-z2", "vae-z3", "vae-z2-corr", "vae-z20", "beta-vae-b4", "conv-vae-z20",
                            "scratch-conv-vae") if m in status["loaded"]]
    assert encoders, "no encoder loaded"
    for model in encoders:
        inp, rec, post, lmap, nn, summary, data = client.predict(drawings["7"], model, api_name="/encode")
        assert _img(inp).shape == (224, 224, 3) and _img(rec).shape == (224, 224, 3)
        assert _img(lmap).shape == (454, 440, 3)
        assert _img(post).shape[1] == 400 and _img(nn).shape[0] > 56
        assert isinstance(summary, str) and "percentile" in summary
        assert {"mean", "sigma", "recon_nll", "kl", "elbo", "elbo_percentile", "knn_label", "neighbours",
                "map_model", "handwriting"} <= set(data)
        assert len(data["mean"]) == len(data["sigma"]) == get_config(model).z_dim and len(data["neighbours"]) == 8


def test_bad_drawings_give_short_errors(client, drawings):
    import httpx

    expect = {"empty": "empty", "white": "empty", "none": "empty", "dot": "dot", "filled": "ink",
              "photo": "photo", "huge": "too large", "tiny": "too small"}
    for name, word in expect.items():
        msg = _app_error(client.predict, drawings[name], "vae-z20", api_name="/encode")
        assert word in msg.lower(), f"{name}: {msg}"
    with pytest.raises(httpx.HTTPStatusError) as err:  # refused as it is uploaded: only images are taken
        client.predict(drawings["not-an-image"], "vae-z20", api_name="/encode")
    assert err.value.response.status_code == 415 and "images" in err.value.response.text


def test_wrong_types_give_short_errors(client, drawings):
    _app_error(client.predict, "not a drawing", "vae-z20", api_name="/encode")
    _app_error(client.predict, {"composite": 3}, "vae-z20", api_name="/encode")
    _app_error(client.predict, drawings["7"], "no-such-model", api_name="/encode")
    _app_error(client.predict, drawings["7"], 42, api_name="/encode")
    _app_error(client.predict, "vae-z20", "test digit 1", None, "test digit 2", None, "many", 0, api_name="/interpolate")
    _app_error(client.predict, "vae-z20", "test digit 1", None, "test digit 2", None, 1000, 0, api_name="/interpolate")
    _app_error(client.predict, "vae-z20", "nowhere", None, "test digit 2", None, 10, 0, api_name="/interpolate")
    _app_error(client.predict, "vae-z2", 99.0, 0.0, api_name="/decode_point")
    _app_error(client.predict, "vae-z2", "left", 0.0, api_name="/decode_point")
    _app_error(client.predict, "vae-z20", -5, 0, api_name="/generate")
    _app_error(client.predict, "eleven", 8, 0, api_name="/conditional")
    _app_error(client.predict, "not-a-variant", api_name="/model_card")
    _app_error(client.predict, "my drawing", None, 0, api_name="/compare_betas")


def test_encode_array(client, status):
    """/encode_array (the pad's server fallback): 784 values in, the code, reconstruction and map model out."""
    x = np.zeros((28, 28), np.float32)
    x[6:22, 13:15] = 1
    got = client.predict(x.ravel().tolist(), "vae-z20", api_name="/encode_array")
    assert len(got["mean"]) == 20 and len(got["recon"]) == 784 and isinstance(got["elbo"], float)
    assert len(got["neighbours"]) == 8 and got["map"]["model"] == "vae-z2" and len(got["map"]["mean"]) == 2
    for bad in ([0.5] * 783, [2.0] * 784, "pixels", [[0.1] * 28] * 27):
        msg = _app_error(client.predict, bad, "vae-z20", api_name="/encode_array")
        assert "784" in msg or "[0, 1]" in msg, msg
    _app_error(client.predict, x.ravel().tolist(), "color-vae", api_name="/encode_array")


# ---------------------------------------------------------------------------- 2. interpolate
def test_interpolate_and_arithmetic(client, status, drawings):
    """/interpolate between two drawings or test digits: the strip, a GIF going there and back, the path on the map,
    and where each frame sits; /arithmetic: the equation's row, the map and the codes."""
    strip, gif, lmap, info = client.predict("vae-z20", "my drawing", drawings["7"], "my drawing", drawings["1"], 8, 0,
                                            api_name="/interpolate")
    assert info["steps"] == 8 and len(info["tiles"]["linear"]) == 8 and len(info["tiles"]["spherical"]) == 8
    g = Image.open(gif)
    assert g.format == "GIF" and g.n_frames == 2 * 8 - 2 and _img(lmap).shape == (454, 440, 3)
    strip, gif, lmap, info = client.predict("vae-z20", "test digit 4", None, "random test digit", None, 5, 3,
                                            api_name="/interpolate")
    assert "a 4" in info["a"] and _img(strip).shape[0] == 24 + 2 * 84 + 3 * 4
    row, amap, ainfo = client.predict("vae-z20", "test digit 7", None, "test digit 1", None, "test digit 4", None, 0,
                                      api_name="/arithmetic")
    assert _img(row).shape == (28 * 4 + 16, 4 * 112 + 3 * 44 + 8 * 8, 3)
    assert len(ainfo["z_result"]) == 20 and 0 <= ainfo["knn_label"] <= 9 and _img(amap).shape == (454, 440, 3)


# ---------------------------------------------------------------------------- 3. betas
def test_compare_betas(client, status, drawings):
    betas = [b for b in status["loaded"] if b.startswith("beta-vae")]
    if not betas:
        assert "beta" in _app_error(client.predict, "my drawing", drawings["3"], 0, api_name="/compare_betas").lower()
        return
    inp, fig, table, data = client.predict("my drawing", drawings["3"], 0, api_name="/compare_betas")
    assert _img(inp).shape == (168, 168, 3)
    assert _img(fig).shape[0] > 5 * 150 and _img(fig).shape[1] > 900  # a row per β; missing ones show a note
    assert [r[0] for r in table["data"]] == [f"beta-vae-b{b}" for b in ("0.5", "1", "2", "4", "8")]
    assert set(data["models"]) == set(betas)
    assert all(len(data["models"][b]["kl_per_dim"]) == 10 for b in betas)
    _, _, _, data2 = client.predict("test digit 2", None, 5, api_name="/compare_betas")
    assert "a 2" in data2["input"]


# ---------------------------------------------------------------------------- 4. explorer
def test_latent_explorer(client, status):
    if "vae-z2" in status["loaded"]:
        assert _img(client.predict("vae-z2", 15, 2.5, api_name="/manifold")).shape == (420, 420, 3)
        digit, lmap = client.predict("vae-z2", 0.5, -1.0, api_name="/decode_point")
        assert _img(digit).shape == (224, 224, 3) and _img(lmap).shape == (454, 440, 3)
    else:
        _app_error(client.predict, "vae-z2", 15, 2.5, api_name="/manifold")
    if "vae-z3" in status["loaded"]:
        grid, near = client.predict(0.5, 10, api_name="/slice3d")
        assert _img(grid).shape == (280, 280, 3) and _img(near).shape == (454, 440, 3)
    else:
        assert "vae-z3" in _app_error(client.predict, 0.5, 10, api_name="/slice3d")
    iso, corr, md = client.predict(api_name="/corr_maps")
    assert _img(iso).shape[:2] in ((454, 440), (450, 440)) and isinstance(md, str)


# ---------------------------------------------------------------------------- 5. generate
def test_generate_every_model(client, status):
    for model in status["loaded"]:
        img = _img(client.predict(model, 16, 1, api_name="/generate"))
        assert img.shape[0] > 100 and img.shape[2] == 3
    dense = _img(client.predict("vae-z2", 16, 1, api_name="/generate_density"))
    assert dense.shape == _img(client.predict("vae-z2", 16, 1, api_name="/generate")).shape
    assert "no density" in _app_error(client.predict, "color-gumbel", 16, 1, api_name="/generate_density")
    if "cvae" in status["loaded"]:
        assert _img(client.predict("3", 6, 0, api_name="/conditional")).shape == (2 + 58, 2 + 6 * 58, 3)
        assert _img(client.predict("all", 4, 0, api_name="/conditional")).shape == (2 + 10 * 58, 2 + 4 * 58, 3)
    else:
        assert "cvae" in _app_error(client.predict, "3", 6, 0, api_name="/conditional")
    for model in ("color-vae", "color-gumbel", "color-joint"):
        if model in status["loaded"]:
            img, table = client.predict(model, 2, api_name="/color_codes")
            assert _img(img).shape[1] > 300 and len(table["data"]) >= 1
            assert set(r[1] for r in table["data"]) <= {"colour", "shape", "colour and shape", "little"}
        else:
            assert model in _app_error(client.predict, model, 2, api_name="/color_codes")


# ---------------------------------------------------------------------------- 6. models
def test_model_cards(client, status):
    from vae_hub import VARIANTS

    for v in VARIANTS:
        card, metrics, figs, download = client.predict(v, api_name="/model_card")
        assert isinstance(card, str) and v in card and f"vae-hub-{v}" in download
        if v in status["loaded"]:
            assert metrics["headers"] == ["metric", "value"] and metrics["data"], v
            assert figs.count("<img ") >= 3, f"{v}: no figures"
        else:
            assert "Not available" in card


# ---------------------------------------------------------------------------- a server that stays up
def _queue_call(http, fn_index: int, data: list, session: str) -> dict:
    """One call of any event handler, public or private, as the page makes it: join the queue, read the result."""
    import json

    r = http.post("/gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session,
                                                   "event_data": None, "trigger_id": None})
    if r.status_code != 200:
        return {"http": r.status_code, "detail": r.text[:300]}
    with http.stream("GET", f"/gradio_api/queue/data?session_hash={session}") as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    return msg
    return {"http": "no result"}


def _upload(http, path: Path) -> dict:
    with open(path, "rb") as f:
        r = http.post("/gradio_api/upload", files={"files": (path.name, f, "image/png")})
    r.raise_for_status()
    return {"path": r.json()[0], "meta": {"_type": "gradio.FileData"}, "orig_name": path.name}


def test_every_endpoint_answers_bad_input_briefly(tmp_path):
    """Every event handler, private ones included, gets junk: each answers with a short error (or a value),
    never a traceback or an echo of the input, and the server answers a good request afterwards."""
    import httpx

    url = space_url()
    log = Path(_server["log"])
    log_before = log.read_text()
    png = tmp_path / "seven.png"
    Image.fromarray(render_strokes(DIGIT_STROKES[7], (200, 200), 10)).save(png)
    big = tmp_path / "big.png"
    Image.new("L", (5000, 5000), 255).save(big)  # a few kB on disk, 25 Mpx decoded
    long = "x" * 100_000
    with httpx.Client(base_url=url.rstrip("/"), timeout=60) as http:
        config = http.get("/config").json()
        fns = [d for d in config["dependencies"] if d.get("backend_fn")]
        assert len(fns) > 20
        seven, huge = _upload(http, png), _upload(http, big)
        layers = {"background": None, "layers": [seven] * 80, "composite": seven, "id": None}
        for d in fns:
            n = len(d["inputs"])
            for label, data in (("long strings", [long] * n), ("nothing", [None] * n),
                                ("many layers", [layers] * n), ("huge image", [huge] * n)):
                out = _queue_call(http, d["id"], data, f"fuzz-{d['id']}-{label[:4]}")
                assert "http" not in out, f"{d.get('api_name')} ({label}): {out}"
                if out.get("success"):
                    continue
                err = (out.get("output") or {}).get("error")
                assert isinstance(err, str) and err, f"{d.get('api_name')} ({label}): no message: {out}"
                assert len(err) <= 240 and "x" * 41 not in err, f"{d.get('api_name')} ({label}): {err[:300]}"
        # what the refusals say, on the /encode handler (each call uploads afresh, as the page does: an upload
        # goes once the call that used it has answered)
        enc = next(d["id"] for d in fns if d.get("api_name") == "encode")
        seven = _upload(http, png)
        layers = {"background": None, "layers": [seven] * 80, "composite": seven, "id": None}
        err = _queue_call(http, enc, [layers, "vae-z20"], "fuzz-layers")["output"]["error"]
        assert "layer" in err, err
        err = _queue_call(http, enc, [{"background": None, "layers": [], "composite": _upload(http, big), "id": None},
                                      "vae-z20"], "fuzz-huge")["output"]["error"]
        assert "4096" in err, err
        err = _queue_call(http, enc, [{"background": None, "layers": [], "composite": {
            "path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, "id": None}, "vae-z20"], "fuzz-path")
        assert "not allowed" in err["output"]["error"], err
        truncated = tmp_path / "cut.png"
        truncated.write_bytes(png.read_bytes()[:300])
        err = _queue_call(http, enc, [{"background": None, "layers": [], "composite": _upload(http, truncated),
                                       "id": None}, "vae-z20"], "fuzz-cut")["output"]["error"]
        assert "unreadable" in err or "not an image" in err, err
        good = _queue_call(http, enc, [{"background": None, "layers": [], "composite": _upload(http, png), "id": None},
                                       "vae-z20"], "after-fuzz")
        assert good.get("success"), good
    new_log = log.read_text()[len(log_before):]
    assert "Traceback" not in new_log, new_log[-2000:]


def test_sigterm_removes_the_temp_folders():
    """A Space being stopped (SIGTERM) exits cleanly and leaves no vae_space_* folder behind."""
    import signal

    tmp = Path(tempfile.gettempdir())
    before = set(tmp.glob("vae_space_*"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("VAE_HUB_WEIGHTS", "VAE_HUB_NAMESPACE", "SPACE_ID")}
    env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, str(ROOT / "space" / "app.py")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while time.time() - t0 < 120:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        ours = set(tmp.glob("vae_space_*")) - before
        assert ours, "the app made its temp folder"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not [p for p in ours if p.exists()], "SIGTERM left temp folders behind"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_style_transfer_endpoint(client, status):
    """/style_transfer through gradio_client: cvae's code of a test digit, decoded as every digit."""
    if "cvae" not in status["loaded"]:
        pytest.skip("cvae not loaded")
    fig, info = client.predict("thick test digit 7", 0, api_name="/style_transfer")
    assert _img(fig).ndim == 3 and isinstance(info["label"], int) and info["model"] == "cvae"
    msg = _app_error(client.predict, "my drawing", 0, api_name="/style_transfer")  # a drawing carries no label
    assert "choices" in msg or "source" in msg, msg


def test_unknown_endpoint_names_answer_404_briefly(client):
    """/gradio_api/call/<name> for a name that does not exist (a typo, or one removed in an earlier version):
    404 and one short line, not Gradio's HTTP 500 with a traceback in the log."""
    import json
    import urllib.error

    for name in ("nonexistent", "map_click", "grid_click"):
        req = urllib.request.Request(space_url() + f"gradio_api/call/{name}", data=json.dumps({"data": []}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        body = err.value.read().decode()
        assert err.value.code == 404 and name in json.loads(body)["error"] and len(body) < 200
    assert "FnIndexInferError" not in Path(_server["log"]).read_text()


# ---------------------------------------------------------------------------- issue 23: visitors who misbehave
def _log_since(before: str) -> str:
    return Path(_server["log"]).read_text()[len(before):]


def test_component_server_refuses_briefly():
    """An unknown component, an oversized body, an oversized input: short JSON answers, never HTTP 500 with a
    traceback in the log (server functions run outside the queue: they are bounded in limits.py)."""
    import httpx

    url = space_url()
    before = Path(_server["log"]).read_text()
    with httpx.Client(base_url=url.rstrip("/"), timeout=60) as http:
        comp = next(c["id"] for c in http.get("/config").json()["components"]
                    if c.get("props", {}).get("elem_id") == "explore-live")
        call = dict(component_id=comp, session_hash="faults", fn_name="decode_points")
        r = http.post("/gradio_api/component_server", json={**call, "component_id": 987654, "data": {}})
        assert r.status_code == 404 and len(r.text) < 200 and "error" in r.json(), r.text[:300]
        r = http.post("/gradio_api/component_server", json={**call, "data": {"model": "vae-z3", "z": [0.0] * 100_000,
                                                                              "k": 3}})
        assert r.status_code == 413 and len(r.text) < 200, r.text[:300]
        r = http.post("/gradio_api/component_server", json={**call, "data": {"model": "vae-z3", "z": [0.0] * 6000,
                                                                              "k": 3}})
        assert r.status_code == 200 and "4,096" in r.json()["error"], r.text[:300]
        r = http.post("/gradio_api/component_server", json={**call, "data": {"model": "vae-z3", "z": [0.5] * 30,
                                                                              "k": 3}})
        assert r.status_code == 200 and len(r.json()["images"]) == 10 * 784
    assert "Traceback" not in _log_since(before)


def test_the_app_page_and_its_server_functions():
    """``/`` is the browser app's page (its manifest inline, none of Gradio's scripts); its server functions answer
    at vh-call/<name>, and an unknown name or a body that is not JSON gets a short answer."""
    url = space_url()
    with urllib.request.urlopen(url, timeout=30) as r:
        html = r.read().decode()
    assert 'id="vh-manifest"' in html and "app.js" in html and "/assets/" not in html and len(html) < 60_000

    def call(name: str, body: bytes) -> tuple[int, dict]:
        req = urllib.request.Request(url + f"vh-call/{name}", data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    x = np.zeros((28, 28), np.float32)
    x[6:22, 13:15] = 1
    status, out = call("handwriting", json.dumps({"x": x.ravel().tolist()}).encode())
    assert status == 200 and out["thickness"] > 0, out
    assert call("nonexistent", b"{}") == (404, {"error": "no server function 'nonexistent' here"})
    assert call("handwriting", b"{not json")[0] == 400


def test_one_client_cannot_fill_the_queue():
    """A client that keeps joining the queue gets HTTP 429 beyond its share (limits.MAX_PER_SESSION calls waiting
    or running), with a short message; another client still gets in."""
    import httpx

    url = space_url()
    with httpx.Client(base_url=url.rstrip("/"), timeout=60) as http:
        fn = next(d["id"] for d in http.get("/config").json()["dependencies"] if d.get("api_name") == "compare_betas")
        answers = [http.post("/gradio_api/queue/join", json={"data": ["random test digit", None, i], "fn_index": fn,
                                                             "session_hash": "greedy", "event_data": None,
                                                             "trigger_id": None}) for i in range(20)]
        accepted = [r.json()["event_id"] for r in answers if r.status_code == 200]
        refused = [r for r in answers if r.status_code != 200]
        try:
            assert 1 <= len(accepted) <= 10 and len(refused) >= 10, [r.status_code for r in answers]
            assert all(r.status_code == 429 and "calls waiting" in r.json()["detail"] for r in refused), refused[0].text
            assert len(refused[0].text) < 200
            status = next(d["id"] for d in http.get("/config").json()["dependencies"] if d.get("api_name") == "status")
            other = _queue_call(http, status, [], "another-client")
            assert other.get("success"), other
        finally:
            for event in accepted:  # leave no work behind for the tests that follow
                http.post("/gradio_api/cancel", json={"session_hash": "greedy", "fn_index": fn, "event_id": event})


def test_an_unknown_session_is_refused_in_one_line():
    """/queue/data for a session that has no events: Gradio's own "session not found" message, and one log line
    (it logged a 76-line traceback per request)."""
    import httpx

    url = space_url()
    before = Path(_server["log"]).read_text()
    with httpx.Client(base_url=url.rstrip("/"), timeout=30) as http:
        for _ in range(3):
            r = http.get("/gradio_api/queue/data", params={"session_hash": "no-such-session"})
            assert r.status_code == 200 and '"session_not_found": true' in r.text, r.text[:300]
    time.sleep(0.5)
    new = _log_since(before)
    assert "Traceback" not in new and new.count("no such session") == 3, new[-2000:]


def test_uploads_are_images_of_bounded_size_that_go_once_answered(tmp_path):
    """Any file type of any size was accepted and kept 30 minutes or more: now only the image types the pads take,
    at most limits.MAX_UPLOAD_BYTES, deleted a few seconds after the call that used it has answered."""
    import uuid

    import httpx

    url = space_url()
    png = tmp_path / "seven.png"
    Image.fromarray(render_strokes(DIGIT_STROKES[7], (200, 200), 10)).save(png)
    with httpx.Client(base_url=url.rstrip("/"), timeout=60) as http:
        name = f"notes-{uuid.uuid4().hex}.txt"
        r = http.post("/gradio_api/upload", files={"files": (name, b"not an image at all", "text/plain")})
        assert r.status_code == 415 and len(r.text) < 200, r.text[:300]
        r = http.post("/gradio_api/upload", files={"files": ("big.png", b"\0" * (3 << 20), "image/png")})
        assert r.status_code == 413 and len(r.text) < 200, r.text[:300]
        seven = _upload(http, png)
        uploads = Path(seven["path"]).parent.parent
        assert not list(uploads.glob(f"*/{name}")), "the refused file was not kept"
        out = _queue_call(http, next(d["id"] for d in http.get("/config").json()["dependencies"]
                                     if d.get("api_name") == "encode"),
                          [{"background": None, "layers": [], "composite": seven, "id": None}, "vae-z20"], "uploader")
        assert out.get("success"), out
    t0 = time.time()
    while Path(seven["path"]).exists() and time.time() - t0 < 20:
        time.sleep(0.5)
    assert not Path(seven["path"]).exists(), "the upload outlived its call"


def test_cards_of_a_weights_folder_outside_the_working_directory(tmp_path):
    """--weights DIR outside the app's working and temp folders: Gradio refused every card's figures; now the
    folder's figure files are served, and a figure that is a symlink leaving its folder is left out quietly."""
    import shutil

    from gradio_client import Client

    weights, own_tmp = tmp_path / "weights", tmp_path / "app-tmp"  # neither under the cwd nor the app's temp dir
    shutil.copytree(ROOT / "pretrained" / "vae-z2", weights / "vae-z2")
    own_tmp.mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "private.png")
    (weights / "vae-z2" / "figures" / "escape.png").symlink_to(tmp_path / "private.png")
    url, proc, log = launch_app(("--weights", str(weights)), {"TMPDIR": str(own_tmp), "VAE_HUB_CACHE": str(tmp_path / "c")})
    try:
        client = Client(url, verbose=False)
        card, metrics, figs, download = client.predict("vae-z2", api_name="/model_card")
        srcs = re.findall(r'<img src="([^"]+)"', figs)
        assert len(srcs) >= 5 and "escape" not in figs, figs
        for src in srcs:  # served at content-addressed URLs that name no folder
            with urllib.request.urlopen(url.rstrip("/") + "/" + src, timeout=10) as r:
                body = r.read()
            assert len(body) > 1000 and src.startswith("vh/"), src
        assert "weights/vae-z2" in download
    finally:
        _stop(proc)
    assert "Traceback" not in Path(log).read_text()

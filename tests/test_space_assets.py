"""The Space's files and how they are served, in-process (no browser, no app): the asset route and page middleware
(content-addressed URLs, compression chosen by Accept-Encoding, caching headers and 304s, nothing but registered
files, a cache that cannot be written costing size, never the file), the browser runtime's pin, and the Space's
card."""

from __future__ import annotations

import os
import time
from pathlib import Path

import brotli
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from vae_space.assets import IMMUTABLE, AssetStore
from vae_space.serving import PageMiddleware

from .conftest import ROOT


def _files(tmp_path: Path) -> Path:
    web = tmp_path / "web"
    web.mkdir()
    (web / "a.js").write_text("import './b.js';\n" + "console.log('a');\n" * 400)
    (web / "b.js").write_text("export const b = 1;\n" * 300)
    (web / "model.onnx").write_bytes(os.urandom(1000) + bytes(20000))
    (web / "map.png").write_bytes(os.urandom(3000))
    return web


def _client(store: AssetStore) -> TestClient:
    return TestClient(Starlette(routes=[store.route()]))


def _wait(store: AssetStore, timeout: float = 30) -> None:
    t0 = time.time()
    while store.pending() and time.time() - t0 < timeout:
        time.sleep(0.05)
    assert not store.pending()


def test_assets_are_content_addressed_compressed_and_cached_for_good(tmp_path):
    web = _files(tmp_path)
    store = AssetStore(tmp_path / "cache")
    urls = store.group(web, ["a.js", "b.js"])
    png = store.file(web / "map.png")
    onnx = store.file(web / "model.onnx", "encoder.onnx")
    # one key for modules that import each other by relative URL; no server path anywhere in a URL
    assert urls["a.js"].rsplit("/", 1)[0] == urls["b.js"].rsplit("/", 1)[0]
    assert all(str(tmp_path) not in u and u.startswith("vh/") for u in [*urls.values(), png, onnx])
    assert onnx.endswith("/encoder.onnx")
    _wait(store)
    c = _client(store)
    raw = (web / "model.onnx").read_bytes()
    r = c.get("/" + onnx, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "br" and r.content == raw  # httpx decodes br
    assert r.headers["cache-control"] == IMMUTABLE and "accept-encoding" in r.headers["vary"].lower()
    assert int(r.headers["content-length"]) < len(raw) / 2
    r = c.get("/" + onnx, headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and r.content == raw
    r = c.get("/" + onnx, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in r.headers and r.content == raw
    r = c.get("/" + png, headers={"Accept-Encoding": "br"})  # already compressed formats travel as they are
    assert "content-encoding" not in r.headers and r.headers["content-type"] == "image/png"
    # a conditional request gets 304 and no body, whatever the encoding asked for
    etag = r.headers["etag"]
    r = c.get("/" + png, headers={"If-None-Match": etag, "Accept-Encoding": "gzip"})
    assert r.status_code == 304 and not r.content
    # the quality-11 copy is cached on disk by content: a new store finds it instead of compressing again
    cached = list((tmp_path / "cache").glob("*.br"))
    assert cached and all(brotli.decompress(p.read_bytes()) for p in cached)
    store.stop()


def test_only_registered_files_are_served(tmp_path):
    web = _files(tmp_path)
    store = AssetStore(tmp_path / "cache", background=False)
    url = store.file(web / "a.js")
    c = _client(store)
    key = url.split("/")[1]
    for path in (f"/vh/{key}/b.js", f"/vh/{key}/../web/b.js", "/vh/0000000000000000/a.js", f"/vh/{key}/%2e%2e/a.js"):
        r = c.get(path)
        assert r.status_code == 404 and len(r.text) < 200, path
    # a changed file gets a new URL; the old URL keeps answering with the content it named
    (web / "a.js").write_text("console.log('changed');\n" * 100)
    assert store.file(web / "a.js") != url


def test_an_unwritable_cache_costs_size_not_files(tmp_path):
    web = _files(tmp_path)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    store = AssetStore(blocked / "compressed")
    url = store.file(web / "model.onnx")
    _wait(store)
    assert store.cache_error
    c = _client(store)
    for enc in ("br", "gzip", "identity"):
        r = c.get("/" + url, headers={"Accept-Encoding": enc})
        assert r.status_code == 200 and r.content == (web / "model.onnx").read_bytes(), enc
    # a damaged copy on disk is checked and made again, never served
    store.stop()
    good = AssetStore(tmp_path / "cache2")
    url = good.file(web / "b.js")
    _wait(good)
    copy = next((tmp_path / "cache2").glob("*.br"))
    copy.write_bytes(b"not brotli")
    again = AssetStore(tmp_path / "cache2")
    url2 = again.file(web / "b.js")
    assert url2 == url
    _wait(again)
    r = _client(again).get("/" + url2, headers={"Accept-Encoding": "br"})
    assert r.content == (web / "b.js").read_bytes()


@pytest.fixture
def page_app():
    html = "<html>" + "<p>the page</p>" * 2000 + "</html>"
    app = Starlette(routes=[
        Route("/", lambda r: HTMLResponse(html)),
        Route("/assets/Index-CsUOoOcz.js", lambda r: HTMLResponse("x", media_type="text/javascript")),
        Route("/assets/plain.js", lambda r: HTMLResponse("x", media_type="text/javascript")),
        Route("/gradio_api/call/{name}", lambda r: JSONResponse({"event_id": "1"}), methods=["POST"]),
    ], middleware=[Middleware(PageMiddleware, endpoints=lambda: {"encode", "status"})])
    return TestClient(app), html


def test_page_middleware(page_app):
    c, html = page_app
    r = c.get("/", headers={"Accept-Encoding": "br"})
    assert r.headers["content-encoding"] == "br" and r.text == html and int(r.headers["content-length"]) < len(html) / 5
    r = c.get("/", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and r.text == html
    # Gradio's build files carry a hash of their content in their name: cacheable for good; others untouched
    assert c.get("/assets/Index-CsUOoOcz.js").headers["cache-control"] == IMMUTABLE
    assert "cache-control" not in c.get("/assets/plain.js").headers
    # unknown endpoint names: 404 and one short line (Gradio would answer 500 and log a traceback)
    for name in ("nonexistent", "map_click", "grid_click"):
        r = c.post(f"/gradio_api/call/{name}", json={"data": []})
        assert r.status_code == 404 and name in r.json()["error"] and len(r.text) < 200
    assert c.post("/gradio_api/call/encode", json={"data": []}).status_code == 200


def test_the_app_page_at_root_and_gradio_page_behind_ui():
    """``/`` is the browser app's page; Gradio's page and its API page stay at ?ui=gradio and ?view=api; a page
    that cannot be made sends the visitor to Gradio's instead of failing."""
    made = {"page": lambda: "<html>the app" + " " * 4000 + "</html>"}
    app = Starlette(routes=[Route("/", lambda r: HTMLResponse("<html><head></head>gradio</html>"))],
                    middleware=[Middleware(PageMiddleware, endpoints=set, page=lambda: made["page"]())])
    c = TestClient(app)
    r = c.get("/", headers={"Accept-Encoding": "br"})
    assert r.text.startswith("<html>the app") and r.headers["content-encoding"] == "br"
    assert r.headers["cache-control"] == "no-cache" and int(r.headers["content-length"]) < 500
    for query in ("?ui=gradio", "?ui=gradio&tab=generate", "?view=api"):
        assert "gradio" in c.get("/" + query).text, query

    def broken() -> str:
        raise RuntimeError("no manifest")

    made["page"] = broken
    r = c.get("/")
    assert r.status_code == 200 and "url=?ui=gradio" in r.text


def test_onnx_runtime_pin_matches_the_lock_file():
    """The CDN fallback's subresource integrity is the hash of the pinned npm file."""
    import base64
    import hashlib
    import json

    from vae_space import browser

    lock = json.loads((ROOT / "space" / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/onnxruntime-web"]["version"] == browser.ORT_VERSION
    local = browser.ORT_DIST / browser.ORT_SCRIPT
    if not local.is_file():
        pytest.skip("npm ci has not been run in space/")
    digest = base64.b64encode(hashlib.sha384(local.read_bytes()).digest()).decode()
    assert browser.ORT_INTEGRITY == f"sha384-{digest}"


def test_space_card_lists_every_model():
    """space/README.md's front matter: a Gradio Space, its app file, and every variant's Hub repo."""
    import yaml

    from vae_hub import VARIANTS
    from vae_hub.hub.repo import repo_id_for

    text = (ROOT / "space" / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and str(meta["sdk_version"]).startswith("6.")
    assert (ROOT / "space" / meta["app_file"]).is_file()
    assert set(meta["models"]) == {repo_id_for(v) for v in VARIANTS}


def test_the_space_deploy_layout_runs_its_own_copies(tmp_path):
    """A Space repository is space/ with vae_hub beside app.py: app.py imports both from there, nothing installed."""
    import shutil
    import subprocess
    import sys

    skip = shutil.ignore_patterns("node_modules", "__pycache__", "make_assets.py")  # as docs/space.md uploads it
    shutil.copytree(ROOT / "space", tmp_path, ignore=skip, dirs_exist_ok=True)
    shutil.copytree(ROOT / "vae_hub", tmp_path / "vae_hub", ignore=skip)
    probe = "import vae_space.app, vae_hub; print(vae_space.app.__file__); print(vae_hub.__file__)"
    r = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert all(Path(line).is_relative_to(tmp_path) for line in r.stdout.split()), r.stdout
    help_ = subprocess.run([sys.executable, "app.py", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert help_.returncode == 0 and "--weights" in help_.stdout, help_.stderr

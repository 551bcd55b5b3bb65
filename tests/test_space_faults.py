"""The Space when its disk, its cached files, its weights folders or its visitors misbehave (issue 23), in-process:
a cache that cannot be written, cached files that are damaged or swapped, variants missing, cards that cannot be
read, a folder holding another variant, and server functions flooded, fed junk or failing. tests/test_space.py keeps what
needs a running app (the queue's per-client bound, uploads, unknown sessions and components, figures served
from a weights folder outside the working directory).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import safetensors
import safetensors.torch
from vae_space.engine import Engine
from vae_space.errors import Unavailable
from vae_space.tabs import beta, draw, explore, generate, models

from vae_hub.data.preprocess import DIGIT_STROKES, render_strokes

ROOT = Path(__file__).resolve().parent.parent

X = (np.random.default_rng(0).random(784) * 0.6).astype(np.float32).tolist()  # a 28×28 input in [0, 1]


def _graph_meta(path: Path) -> dict:
    """An ONNX file's metadata as onnxruntime reads it; {} when it does not load."""
    import onnxruntime as ort

    try:
        return dict(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
                    .custom_metadata_map)
    except Exception:
        return {}


def _cache(tmp_path: Path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("VAE_HUB_CACHE", str(cache))
    return cache / "space"


# ---------------------------------------------------------------------------- 1. a cache that cannot be written
def test_unwritable_cache_keeps_results_in_memory_and_says_so(tmp_path, monkeypatch, caplog):
    """A read-only or full disk under VAE_HUB_CACHE: safetensors raises SafetensorError (not an OSError), the
    ONNX and map writes OSError. Every encoder still works from memory; /status says the cache is not being
    written; the browser is sent to the server for those models, with no server path or errno in what it is told."""
    space = _cache(tmp_path, monkeypatch)

    def full_disk(*_a, **_k):
        raise safetensors.SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                                          f'message: "No space left on device" }}) {space}/.tmp123')

    real_replace = os.replace

    def read_only(src, dst, *a, **k):
        if str(space) in str(dst):
            raise OSError(30, "Read-only file system", str(dst))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    monkeypatch.setattr(os, "replace", read_only)
    caplog.set_level(logging.WARNING, "vae_space")
    eng = Engine.start(None, variants=["vae-z2", "vae-z3"], background=False)
    for name, e in eng.models.items():
        assert not e.error, f"{name}: {e.error}"
        assert e.mu.shape == (len(eng.test.labels), e.config.z_dim) and np.isfinite(e.mu).all()
    out = draw.encode_array(eng, X, "vae-z3")  # /encode_array, served from memory
    assert out["map"]["model"] == "vae-z2" and len(out["recon"]) == 784
    assert eng.latent_map("vae-z2") is not None
    status = eng.status()
    assert status["cache"] != "ok" and "kept in memory" in status["cache"], status
    from vae_space.browser import manifest

    spec = manifest(eng)["models"]
    for name in ("vae-z2", "vae-z3"):
        assert not spec[name]["ready"], "no files on disk: the browser computes on the server"
        shown = f"{spec[name]['error']} {status}"
        assert str(tmp_path) not in shown and "Errno" not in shown and "os error" not in shown, shown
    assert not [p for p in space.rglob("*") if p.is_file()], "no temp file left behind"
    assert len([r for r in caplog.records if "cannot be written" in r.getMessage()]) == 1, "one log line"


# ---------------------------------------------------------------------------- 6. cached ONNX graphs are checked
def test_cached_onnx_graphs_are_checked_before_they_are_served(tmp_path, monkeypatch, caplog):
    """A garbage encoder, a zero-byte decoder, and another variant's graphs copied into a model's cache folder:
    each is refused (logged) and exported again, so what the browser gets loads and is that model's."""
    _cache(tmp_path, monkeypatch)
    names = ["vae-z3", "beta-vae-b4"]
    first = Engine.start(None, variants=names, background=False)
    z3, b4 = (first.models[n].onnx for n in names)
    for graph in ("encoder", "decoder"):
        shutil.copyfile(z3[graph], b4[graph])  # vae-z3's graphs where beta-vae-b4's belong
    z3["encoder"].write_bytes(os.urandom(1000))
    z3["decoder"].write_bytes(b"")
    caplog.set_level(logging.WARNING, "vae_space")
    eng = Engine.start(None, variants=names, background=False)
    for name in names:
        e = eng.models[name]
        assert e.onnx is not None, e.onnx_error
        for graph in ("encoder", "decoder"):
            meta = _graph_meta(e.onnx[graph])
            assert meta.get("variant") == name and meta.get("graph") == graph, (name, graph, meta)
        assert any(name in r.getMessage() and "refused" in r.getMessage() for r in caplog.records), name


# ---------------------------------------------------------------------------- 8. cached test codes are checked
@pytest.mark.parametrize("damage", ["ten rows", "nan"])
def test_cached_test_codes_are_checked_for_shape_and_values(tmp_path, monkeypatch, damage):
    """Codes of the wrong shape broke /slice3d, NaN codes made /encode_array answer bare NaN (not JSON):
    both are computed again; no answer holds a NaN."""
    _cache(tmp_path, monkeypatch)
    eng = Engine.start(None, variants=["vae-z3"], background=False)
    path = eng.prep.codes_path(eng.models["vae-z3"])
    t = safetensors.torch.load_file(str(path))
    if damage == "ten rows":
        t = {k: v[:10].contiguous() for k, v in t.items()}
    else:
        t = {k: v.clone().fill_(float("nan")) for k, v in t.items()}
    safetensors.torch.save_file(t, str(path))
    eng = Engine.start(None, variants=["vae-z3"], background=False)
    e = eng.models["vae-z3"]
    assert e.mu.shape == (len(eng.test.labels), 3) and np.isfinite(e.mu).all() and np.isfinite(e.elbo).all()
    assert explore.slice3d(eng, 0.0, 6, 2.5).grid.shape == (168, 168, 3)
    json.dumps(draw.encode_array(eng, X, "vae-z3"), allow_nan=False)  # valid JSON: no NaN anywhere


def test_answers_never_carry_nan():
    from vae_space.guard import finite

    out = finite([{"elbo": float("nan"), "x": [1.0, float("inf"), -float("inf")], "s": "nan"}, 2.5, None])
    assert json.dumps(out, allow_nan=False) == '[{"elbo": null, "x": [1.0, null, null], "s": "nan"}, 2.5, null]'


# ---------------------------------------------------------------------------- 9, 10. weights folders
def test_missing_variants_degrade_gracefully(tmp_path):
    """Only vae-z20 available: the app still builds, and every feature without its model says why."""
    (tmp_path / "vae-z20").symlink_to(ROOT / "pretrained" / "vae-z20")
    eng = Engine.start(str(tmp_path), background=False)
    assert list(eng.models) == ["vae-z20"] and "vae-z2" in eng.missing
    pad = {"background": None, "layers": [], "composite": render_strokes(DIGIT_STROKES[7])}
    out = draw.encode(eng, pad, "vae-z20")
    assert out.latent_map.shape == (450, 440, 3)  # the map is a visible "not available" panel
    for call, word in [(lambda: beta.compare_betas(eng, "test digit 1", None, 0), "beta"),
                       (lambda: generate.conditional(eng, "3", 4, 0), "cvae"),
                       (lambda: explore.slice3d(eng, 0.0, 10, 2.5), "vae-z3"),
                       (lambda: explore.manifold(eng, "vae-z2", 15, 2.5), "vae-z2"),
                       (lambda: generate.color_codes(eng, "color-joint", 0), "color-joint")]:
        with pytest.raises(gr.Error) as err:
            call()
        assert word in str(err.value)
    card = models.model_card(eng, "cvae")
    assert "Not available" in card.card
    from vae_space.app import build_demo

    build_demo(eng)  # builds with every other feature disabled


@pytest.fixture
def odd_weights(tmp_path):
    """A weights folder whose cards and histories are broken in the ways issue 23 lists, and a folder named for
    one variant that holds another."""
    w = tmp_path / "weights"
    for v in ("vae-z3", "vae-z2", "vae-z2-corr"):
        shutil.copytree(ROOT / "pretrained" / v, w / v)
    (w / "vae-z3" / "README.md").write_bytes("# vae-z3: café\n".encode("latin-1"))  # not UTF-8
    (w / "vae-z2" / "history.json").write_text("[]")  # valid JSON of the wrong shape
    with open(w / "vae-z2-corr" / "README.md", "r+b") as f:  # 3 MB: beyond any card (a sparse file)
        f.truncate(3 << 20)
    (w / "scratch-conv-vae").symlink_to(ROOT / "pretrained" / "conv-vae-z20")
    return w


def test_unreadable_cards_and_histories_cost_the_card_not_the_model(odd_weights, monkeypatch):
    real = Path.read_text

    def no_large_reads(self, *a, **k):  # a 2 GB card took 18 s and 6.5 GB: nothing that large is read
        assert self.stat().st_size <= 1 << 20, f"{self} read whole"
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", no_large_reads)
    eng = Engine.start(str(odd_weights), variants=["vae-z3", "vae-z2", "vae-z2-corr"], background=True)
    eng.shutdown()
    monkeypatch.undo()
    assert set(eng.models) == {"vae-z3", "vae-z2", "vae-z2-corr"}, eng.missing
    assert eng.models["vae-z3"].card == "" and eng.models["vae-z2-corr"].card == ""
    assert eng.models["vae-z2"].metrics == [] and eng.models["vae-z2"].card
    card = models.model_card(eng, "vae-z3")
    assert "No model card" in card.card and card.figures


def test_a_folder_holding_another_variant_is_not_served_under_its_name(odd_weights):
    eng = Engine.start(str(odd_weights), variants=["scratch-conv-vae"], background=True)
    eng.shutdown()
    assert "scratch-conv-vae" not in eng.models
    assert "holds conv-vae-z20" in eng.missing["scratch-conv-vae"], eng.missing


# ---------------------------------------------------------------------------- 2. server functions
def _body(answer) -> dict:
    """What the page receives from a server function: its JSON, parsed strictly (no NaN)."""
    if isinstance(answer, dict):
        return json.loads(json.dumps(answer, allow_nan=False))
    return json.loads(answer.body, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def _concurrently(fn, payloads: list) -> list:
    """Call a server function with each payload at once, as Gradio does: awaited if async, else in a thread."""

    async def one(p):
        return await fn(p) if inspect.iscoroutinefunction(fn) else await asyncio.to_thread(fn, p)

    async def main():
        return await asyncio.gather(*(one(p) for p in payloads))

    return asyncio.run(main())


def test_server_functions_have_slots_bounds_and_short_errors(monkeypatch, caplog):
    """Each server function runs at most its slot count at once (64 clients of decode_points starved the queue
    before), answers "busy" after a short wait, refuses oversized input unread, turns a failure into a short
    message and one log line, and never answers NaN."""
    from vae_space.browser import server_fn

    running, peak, calls = [0], [0], []
    lock = threading.Lock()

    def slow(x):
        with lock:
            calls.append(x)
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.3)
        with lock:
            running[0] -= 1
        if x == "boom":
            raise RuntimeError("internal detail /srv/secret/path")
        return {"x": x, "nan": float("nan")}

    fn = server_fn("slow", slow, "x")  # one slot
    raw = _concurrently(fn, [{"x": i} for i in range(3)])
    assert peak[0] == 1, f"{peak[0]} calls ran at once"
    answers = [_body(a) for a in raw]
    assert [a["x"] for a in answers] == [0, 1, 2] and all(a["nan"] is None for a in answers)

    from vae_space import limits

    monkeypatch.setattr(limits, "SERVER_WAIT_S", 0.1)
    fn = server_fn("slow", slow, "x")
    answers = [_body(a) for a in _concurrently(fn, [{"x": i} for i in range(3)])]
    assert sum(a.get("error") == limits.BUSY for a in answers) == 2, answers

    calls.clear()
    big = _body(_concurrently(fn, [{"x": list(range(100_000))}])[0])
    assert "error" in big and len(big["error"]) < 240 and not calls, "refused before the call"
    caplog.set_level(logging.INFO, "vae_space")
    boom = _body(_concurrently(fn, [{"x": "boom"}])[0])
    assert boom["error"] == "slow could not answer that call (RuntimeError).", boom
    lines = [r.getMessage() for r in caplog.records if "slow" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0], lines

    def gone(x):
        raise Unavailable("vae-z3 is not available here: no folder vae-z3/ in pretrained/.")

    answer = _body(_concurrently(server_fn("gone", gone, "x"), [{"x": 1}])[0])  # the engine's refusal: its words
    assert answer == {"error": "vae-z3 is not available here: no folder vae-z3/ in pretrained/."}, answer


def test_decode_points_answers_compactly():
    """The explorer's fallback: 625 decoded images as JSON at 3 decimals, written without a float per value."""
    from vae_space.limits import pixels_response

    values = np.linspace(0, 1, 625 * 784, dtype=np.float32)
    body = json.loads(pixels_response("images", values).body)
    assert len(body["images"]) == values.size and np.abs(np.array(body["images"]) - values).max() <= 5.01e-4


# ---------------------------------------------------------------------------- 14. uploads
def test_uploads_go_once_their_call_has_answered(tmp_path):
    from vae_space.limits import Uploads

    up = Uploads(sweeper=False)
    files = [tmp_path / d / "x.png" for d in ("a", "b", "c")]
    for f in files:
        f.parent.mkdir()
        f.write_bytes(b"png")
    used, unused, late = (str(f) for f in files)
    up.added([used, unused, late])
    t0 = time.monotonic()
    up.acquire([used])
    assert up.sweep(t0 + up.GRACE_S + 1) == 0, "in use, or just uploaded"
    up.release([used])
    up.acquire([late])  # a second call of the same file, still waiting
    assert up.sweep(time.monotonic() + up.GRACE_S + 1) == 1 and not files[0].exists() and not files[0].parent.exists()
    assert up.sweep(t0 + up.UNUSED_S + 1) == 1 and not files[1].exists(), "never used: gone after UNUSED_S"
    assert files[2].exists() and up.sweep(t0 + up.STALE_S + 1) == 1, "a call that never answered: STALE_S at most"

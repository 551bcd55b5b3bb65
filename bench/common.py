"""Shared bits for the benchmarks: the machine description, JSON output, medians and latency figures, a process's
resident memory, the Space started on 127.0.0.1 and called over Gradio's REST API, and the static site served.

Importing it turns Gradio's analytics off, for this process (every script imports it before gradio) and for the
apps it starts. It imports neither torch nor gradio: the load generators' spawned processes import it too.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CHROMIUM = "/usr/bin/chromium"  # Debian's, driven by Playwright
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def machine() -> dict:
    """The CPU (as ``vae_hub.cli.cpu_model`` names it: the repository's one reader), its cores, torch and the
    threads it uses, Python."""
    import platform

    import torch

    from vae_hub.cli import cpu_model

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version()}


def loadavg() -> list[float]:
    """The load average over 1, 5 and 15 minutes: other processes share the CPU a timing ran on."""
    return [round(x, 2) for x in os.getloadavg()]


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def stats(ms: list[float]) -> dict:
    """n, median, 95th percentile, min and max of a list of milliseconds; just ``{"n": 0}`` for none."""
    if not ms:
        return {"n": 0}
    import numpy as np

    a = np.asarray(ms, float)
    return {"n": len(a), "median_ms": round(float(np.median(a)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
            "min_ms": round(float(a.min()), 2), "max_ms": round(float(a.max()), 2)}


def write(name: str, data: dict, out: str | Path | None = None) -> Path:
    """``data`` as bench/results/<name>.json (or ``out``), with the machine unless ``data`` brings its own."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **data}, indent=1))
    print(f"wrote {path}")
    return path


def rss_mib(pid: int | str = "self", peak: bool = False) -> float | None:
    """A process's resident memory in MiB (Linux /proc/<pid>/status): now (VmRSS) or its peak (VmHWM, which, unlike
    getrusage's ru_maxrss, starts afresh at exec). None where it cannot be read."""
    field = "VmHWM:" if peak else "VmRSS:"
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------------- the Space
class App(NamedTuple):
    url: str  # http://127.0.0.1:<port>/
    proc: subprocess.Popen
    log: Path  # its stdout and stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# what the app would otherwise take from this process's environment: its weights, its runtime, a Space's identity
NOT_PASSED = ("VAE_HUB_WEIGHTS", "VAE_HUB_NAMESPACE", "VAE_SPACE_RUNTIME", "SPACE_ID")


def launch(weights: str | None = None, env: dict[str, str] | None = None, timeout: float = 300,
           ready: bool = False) -> App:
    """``space/app.py`` on a free port of 127.0.0.1: the bundled weights unless ``weights`` (as app.py's --weights),
    its default runtime, offline, no analytics, ``env`` on top (e.g. VAE_SPACE_RUNTIME=server). Returns once the page
    answers or, with ``ready``, once /status says every model is prepared."""
    port = _free_port()
    full = {k: v for k, v in os.environ.items() if k not in NOT_PASSED}
    full.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1",
                GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", **(env or {}))
    argv = ["app.py", *(["--weights", weights] if weights else [])]
    # app.py through runpy: a command line of its own, so that no tool matching "space/app.py" (another
    # session's clean-up on a shared machine) stops the app under test
    serve = f"import runpy, sys; sys.argv = {argv!r}; runpy.run_path('space' + '/app.py', run_name='__main__')"
    fd, log = tempfile.mkstemp(prefix="space-bench-", suffix=".log")
    with os.fdopen(fd, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", serve], cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT)
    app = App(f"http://127.0.0.1:{port}/", proc, Path(log))
    try:
        _wait(app, timeout, ready)
    except BaseException:
        stop(proc)
        raise
    return app


def _wait(app: App, timeout: float, ready: bool) -> None:
    t0 = time.monotonic()
    while True:
        if app.proc.poll() is not None:
            raise RuntimeError(f"the app exited ({app.proc.returncode}); log {app.log}:\n{app.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(app.url, timeout=2):
                break
        except OSError:  # not listening yet
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"the app did not start in {timeout:.0f} s; log {app.log}") from None
            time.sleep(0.3)
    if ready:
        wait_ready(app.url, timeout - (time.monotonic() - t0))


def wait_ready(url: str, timeout: float = 300, compressed: bool = False) -> dict:
    """Poll /status until every model the app loaded is prepared (its background work: steady-state numbers)
    and, with ``compressed``, every compressed copy of its files made (as on a Space up for a minute). Returns
    that status."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        s = asyncio.run(status(url))
        if set(s["ready"]) >= set(s["loaded"]) and not (compressed and s.get("assets_compressing", 0)):
            return s
        time.sleep(1)
    raise RuntimeError(f"the app at {url} did not finish preparing in {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


async def call(http, api: str, data: list, session: str, headers: dict | None = None) -> tuple[str, object]:
    """One call through the queue as Gradio's REST API takes it (POST /call/<api>, then read the SSE result) on an
    httpx.AsyncClient: ("complete" | "error" | "http <code>" | "no result", its output list)."""
    r = await http.post(f"/gradio_api/call/{api}", json={"data": data, "session_hash": session}, headers=headers)
    if r.status_code != 200:
        return f"http {r.status_code}", r.text[:200]
    event = None
    async with http.stream("GET", f"/gradio_api/call/{api}/{r.json()['event_id']}", headers=headers) as s:
        async for line in s.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                return event, json.loads(line[5:])
    return "no result", None


async def status(url: str) -> dict:
    """The app's /status."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        event, out = await call(http, "status", [], "bench-status")
    if event != "complete":
        raise RuntimeError(f"/status: {event} {out}")
    return out[0]


# ---------------------------------------------------------------------------- the static site
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def static_site(weights: str | None = None) -> Iterator[tuple[str, dict]]:
    """The static site (``vae_space.static``) built into a temporary folder from the bundled weights unless
    ``weights``, and served on 127.0.0.1 by Python's http.server (a thread of this process), which sends no
    compression and no caching headers: its URL and the build's summary."""
    from vae_space.static import build

    with tempfile.TemporaryDirectory(prefix="vae-hub-site-") as folder:
        summary = build(folder, weights)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _QuietHandler(*a, directory=folder))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/", summary
        finally:
            server.shutdown()


# ---------------------------------------------------------------------------- the samples' FD
def fd_judge(test) -> tuple:
    """What FD is measured with: the bundled classifier and its features of the test digits (``test``, a Split)."""
    from vae_hub.evaluation.classifier import load_classifier

    clf = load_classifier(ROOT / "pretrained" / "mnist-classifier")
    return clf, clf.predict_features(test.images.float() / 255)[1]


def sample_fd(model, clf, feats, source: str = "prior") -> float:
    """The Fréchet distance of ``model``'s samples (from the prior, or from its ``"density"`` of the training codes)
    to the test digits in ``clf``'s features ``feats`` (``fd_judge``), with ``vae_hub.evaluation.evaluate``'s
    settings (10,000 samples, seed 0)."""
    import torch

    from vae_hub.evaluation.protocol import Settings, scored_samples

    model.eval()
    with torch.inference_mode():
        return scored_samples(model, feats, clf, Settings(), source)[0]["fd"]

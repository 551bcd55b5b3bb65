"""Latency of the Space's endpoints: median and 95th percentile per endpoint, server-side and through
gradio_client, optionally under load. Writes bench/results/space_latency.json.

    python bench/space_latency.py                       # server-side + client, bundled weights
    python bench/space_latency.py --load                # also 16 concurrent clients × 20 mixed requests
    python bench/space_latency.py --load --load-client gradio_client   # the same load from gradio_client sessions
    python bench/space_latency.py --url http://host:7860/ --no-server   # an app that is already running

Server-side means the handler function itself (preprocess the drawing, encode, decode, draw every
output), as Gradio calls it; "+ image I/O" adds what Gradio does around it for images (decode the
sketchpad PNG, encode each output PNG). Client means a full round trip through the queue over HTTP,
including one download per output image; /status (a trivial handler, no files) shows Gradio's own floor.
Other processes on the machine inflate every number: the load average is printed and saved with them.
The target (issue #4): encode median < 50 ms server-side on the 2-core CPU; under load, p95 ≤ 250 ms.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import ROOT, call, launch, loadavg, machine, rss_mib, stats, stop, wait_ready, write
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the server-side timings run the Space's engine in this process

from vae_hub.data.preprocess import DIGIT_STROKES, render_strokes  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "space_latency.json"
TARGET_MS = 50.0
LOAD_TARGET_P95_MS = 250.0


def timeit(fn: Callable[[], object], n: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def drawing(digit: int = 7, size: int = 400) -> np.ndarray:
    """A sketchpad composite as Gradio hands it to the handler: RGBA uint8, black pen on transparent."""
    return render_strokes(DIGIT_STROKES[digit], (size, size), width=size // 12)


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)  # as the app writes its outputs
    return buf.getvalue()


# ---------------------------------------------------------------------------- server-side
def server_side(weights: str | None, n: int) -> dict:
    from vae_space.engine import Engine
    from vae_space.tabs import beta, draw, explore, generate, interpolate, models

    t0 = time.perf_counter()
    eng = Engine.start(weights, background=False)
    start_s = time.perf_counter() - t0
    have = set(eng.models)
    pad = {"background": None, "layers": [], "composite": drawing(7)}
    pad2 = {"background": None, "layers": [], "composite": drawing(1)}
    cases: dict[str, Callable[[], object]] = {}
    for m in ("vae-z20", "vae-z2", "conv-vae-z20"):
        if m in have:
            cases[f"encode[{m}]"] = lambda m=m: draw.encode(eng, pad, m)
    enc = "vae-z20" if "vae-z20" in have else next(iter(eng.available("encoder")), None)
    if enc:
        cases["interpolate"] = lambda: interpolate.interpolate(eng, enc, "my drawing", pad, "my drawing", pad2, 10, 0)
        cases["arithmetic"] = lambda: interpolate.arithmetic(eng, enc, "test digit 7", None, "test digit 1", None,
                                                             "test digit 4", None, 0)
    if eng.available("beta"):
        cases["compare_betas"] = lambda: beta.compare_betas(eng, "my drawing", pad, 0)
    if "vae-z2" in have:
        cases["manifold (cached)"] = lambda: explore.manifold(eng, "vae-z2", 15, 2.5)
        cases["decode_point"] = lambda: explore.decode_point(eng, "vae-z2", 0.5, -1.0)
        cases["corr_maps (cached)"] = lambda: explore.corr_maps(eng)
    if "vae-z3" in have:
        cases["slice3d"] = lambda: explore.slice3d(eng, 0.5, 12, 2.5)
    if enc:
        cases["generate"] = lambda: generate.generate(eng, enc, 36, 0)
    if "cvae" in have:
        cases["conditional"] = lambda: generate.conditional(eng, "all", 8, 0)
    for m in eng.available("color"):
        cases[f"color_codes[{m}]"] = lambda m=m: generate.color_codes(eng, m, 0)
    cases["model_card"] = lambda: models.model_card(eng, "vae-z20")

    out = {}
    for name, fn in cases.items():
        out[name] = stats(timeit(fn, n if not name.startswith(("compare", "color")) else max(10, n // 3)))
    # the encode round trip with Gradio's image work around it: decode the pad's PNG, encode 5 output PNGs
    if enc:
        blob = _png_bytes(drawing(7))

        def with_io() -> None:
            comp = np.asarray(Image.open(io.BytesIO(blob)).convert("RGBA"))
            res = draw.encode(eng, {"background": None, "layers": [], "composite": comp}, enc)
            for a in res.values()[:5]:
                _png_bytes(a)

        out[f"encode[{enc}] + image I/O"] = stats(timeit(with_io, n))
    return {"startup_s": round(start_s, 2), "loaded": sorted(have), "missing": sorted(eng.missing), "endpoints": out}


# ---------------------------------------------------------------------------- through the client
def _client_inputs(tmp: Path) -> dict:
    from gradio_client import handle_file

    paths = {}
    for d in (7, 1):
        p = tmp / f"d{d}.png"
        Image.fromarray(drawing(d)).save(p)
        paths[d] = {"background": None, "layers": [], "composite": handle_file(str(p)), "id": None}
    return paths


def through_client(url: str, n: int) -> dict:
    from gradio_client import Client

    have = set(wait_ready(url)["loaded"])
    c = Client(url, verbose=False)
    with tempfile.TemporaryDirectory() as tmp:
        pads = _client_inputs(Path(tmp))
        enc = "vae-z20" if "vae-z20" in have else "vae-z2"
        cases = {"status (Gradio's own floor)": lambda: c.predict(api_name="/status"),
                 f"encode[{enc}]": lambda: c.predict(pads[7], enc, api_name="/encode"),
                 "interpolate": lambda: c.predict(enc, "my drawing", pads[7], "my drawing", pads[1], 10, 0,
                                                  api_name="/interpolate"),
                 "decode_point": lambda: c.predict("vae-z2", 0.5, -1.0, api_name="/decode_point"),
                 "generate": lambda: c.predict(enc, 36, 0, api_name="/generate")}
        if any(b.startswith("beta-vae") for b in have):
            cases["compare_betas"] = lambda: c.predict("my drawing", pads[7], 0, api_name="/compare_betas")
        return {name: stats(timeit(fn, n if name != "compare_betas" else max(10, n // 3))) for name, fn in cases.items()}


def _load_plan(url: str) -> tuple[str, list[str]]:
    """Wait for the app to be ready; the encoder the load test uses and its request mix to draw from
    (60% encode, 20% interpolate, 20% β comparison)."""
    have = set(wait_ready(url)["loaded"])
    enc = "vae-z20" if "vae-z20" in have else "vae-z2"
    return enc, ["encode"] * 3 + ["interpolate"] + (["compare_betas"] if any(b.startswith("beta") for b in have) else ["encode"])


def _load_result(clients: int, requests: int, download: bool, wall: float, lat: dict[str, list[float]],
                 errors: list[str]) -> dict:
    done = sum(len(v) for v in lat.values())
    return {"clients": clients, "requests_per_client": requests, "downloads": download, "wall_s": round(wall, 2),
            "throughput_rps": round(done / wall, 2), "errors": len(errors), "error_samples": errors[:5],
            "latency": {k: stats(v) for k, v in lat.items() if v}}


def under_load(url: str, clients: int = 16, requests: int = 20, seed: int = 0, download: bool = True) -> dict:
    """`clients` concurrent gradio_client sessions, each sending `requests` mixed requests in a row:
    60% encode, 20% interpolate, 20% β comparison. Latency per kind, throughput, errors.
    download=False: the clients do not fetch the output images (the server still makes them)."""
    from gradio_client import Client

    enc, kinds = _load_plan(url)
    lat: dict[str, list[float]] = {k: [] for k in set(kinds)}
    errors: list[str] = []
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as tmp:
        pads = _client_inputs(Path(tmp))
        sessions = [Client(url, verbose=False, download_files=download) for _ in range(clients)]
        barrier = threading.Barrier(clients)

        def worker(i: int) -> None:
            c, rng = sessions[i], random.Random(seed + i)
            barrier.wait()
            for _ in range(requests):
                kind = rng.choice(kinds)
                t0 = time.perf_counter()
                try:
                    if kind == "encode":
                        c.predict(pads[rng.choice((7, 1))], enc, api_name="/encode")
                    elif kind == "interpolate":
                        c.predict(enc, "my drawing", pads[7], "random test digit", None, 10, rng.randrange(1000),
                                  api_name="/interpolate")
                    else:
                        c.predict("random test digit", None, rng.randrange(1000), api_name="/compare_betas")
                    with lock:
                        lat[kind].append((time.perf_counter() - t0) * 1000)
                except Exception as e:  # counted, not fatal: the point is to see them
                    with lock:
                        errors.append(f"{kind}: {type(e).__name__}: {str(e)[:120]}")

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    return _load_result(clients, requests, download, wall, lat, errors)


async def _upload_pad(http, png: bytes) -> dict:
    """Upload a drawing (as the browser does with every request) and return the sketchpad value naming it."""
    r = await http.post("/gradio_api/upload", files={"files": ("drawing.png", png, "image/png")})
    r.raise_for_status()
    composite = {"path": r.json()[0], "meta": {"_type": "gradio.FileData"}}
    return {"background": None, "layers": [], "id": None, "composite": composite}


async def _http_call(http, api: str, data: list, session: str, download: bool) -> list:
    """One request through Gradio's REST API, plus one GET per output file, as a browser fetches the images it
    shows. ``session`` plays the browser tab's session hash (without one, Gradio builds a fresh session state for
    every call)."""
    event, out = await call(http, api, data, session)
    if event != "complete":
        raise RuntimeError(f"/{api}: {event}: {out}")
    if download:
        for url in [o["url"] for o in out if isinstance(o, dict) and o.get("url")]:
            (await http.get(url)).raise_for_status()
    return out


async def _send(http, kind: str, enc: str, png: bytes, i: int, session: str, download: bool) -> list:
    """One request of a kind the load test sends (or /status), uploading the drawing where it takes one;
    ``i`` picks the random test digit."""
    if kind == "encode":
        api, data = "encode", [await _upload_pad(http, png), enc]
    elif kind == "interpolate":
        api, data = "interpolate", [enc, "my drawing", await _upload_pad(http, png), "random test digit", None, 10, i]
    elif kind == "compare_betas":
        api, data = "compare_betas", ["random test digit", None, i]
    else:
        api, data = kind, []
    return await _http_call(http, api, data, session, download)


def under_load_http(url: str, clients: int = 16, requests: int = 20, seed: int = 0, download: bool = True) -> dict:
    """As ``under_load`` but each client speaks Gradio's HTTP API directly (upload, POST /call, SSE result,
    file downloads) from one asyncio loop: the load generator then costs a fraction of the CPU that 16
    threaded gradio_client sessions do, and on a 2-core machine that CPU is taken from the server."""
    import asyncio

    import httpx

    enc, kinds = _load_plan(url)
    pngs = {d: _png_bytes(drawing(d)) for d in (7, 1)}
    lat: dict[str, list[float]] = {k: [] for k in set(kinds)}
    errors: list[str] = []

    async def client(http, i: int, start: asyncio.Event) -> None:
        rng = random.Random(seed + i)
        session = f"load-{seed}-{i}"
        await start.wait()
        for _ in range(requests):
            kind = rng.choice(kinds)
            t0 = time.perf_counter()
            try:
                if kind == "encode":
                    png, test_digit = pngs[rng.choice((7, 1))], 0
                else:
                    png, test_digit = pngs[7], rng.randrange(1000)
                await _send(http, kind, enc, png, test_digit, session, download)
                lat[kind].append((time.perf_counter() - t0) * 1000)
            except Exception as e:  # counted, not fatal: the point is to see them
                errors.append(f"{kind}: {type(e).__name__}: {str(e)[:120]}")

    async def run() -> float:
        limits = httpx.Limits(max_connections=4 * clients)
        async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=120, limits=limits) as http:
            start = asyncio.Event()
            tasks = [asyncio.create_task(client(http, i, start)) for i in range(clients)]
            await asyncio.sleep(0)
            t0 = time.perf_counter()
            start.set()
            await asyncio.gather(*tasks)
            return time.perf_counter() - t0

    wall = asyncio.run(run())
    return _load_result(clients, requests, download, wall, lat, errors)


def cpu_per_request(url: str, pid: int, n: int = 20) -> dict[str, dict]:
    """The app's CPU time and the wall time per request, one request at a time over Gradio's HTTP API
    (what each kind costs the server: Gradio's own work plus the handler's)."""
    import asyncio

    import httpx

    png = _png_bytes(drawing(7))

    async def run() -> dict[str, dict]:
        out = {}
        async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=60) as http:
            for kind in ("status", "encode", "interpolate", "compare_betas"):
                cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
                for i in range(n):
                    await _send(http, kind, "vae-z20", png, i, "cpu-probe", download=True)
                out[kind] = {"app_cpu_ms": round(1000 * (_cpu_seconds(pid) - cpu0) / n, 1),
                             "wall_ms": round(1000 * (time.perf_counter() - t0) / n, 1), "n": n}
        return out

    return asyncio.run(run())


def _cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


# ---------------------------------------------------------------------------- main
def _table(title: str, rows: dict) -> None:
    print(f"\n{title}")
    print(f"  {'endpoint':34s} {'median ms':>10s} {'p95 ms':>9s} {'n':>5s}")
    for name, s in rows.items():
        print(f"  {name:34s} {s['median_ms']:10.1f} {s['p95_ms']:9.1f} {s['n']:5d}")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="calls per endpoint")
    ap.add_argument("--weights", default=None, help="as for space/app.py (default: the bundled pretrained/)")
    ap.add_argument("--url", default=None, help="benchmark a running app instead of launching one")
    ap.add_argument("--no-server", action="store_true", help="skip the server-side (in-process) timings")
    ap.add_argument("--no-client", action="store_true", help="skip the gradio_client timings")
    ap.add_argument("--load", action="store_true", help="also 16 concurrent clients × 20 mixed requests")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--no-download", action="store_true", help="load-test clients skip fetching output images")
    ap.add_argument("--load-client", choices=["http", "gradio_client"], default="http",
                    help="load-test clients: Gradio's HTTP API from one asyncio loop (default, light on the CPU the "
                         "server needs) or 16 threaded gradio_client sessions")
    ap.add_argument("--out", type=Path, default=RESULTS)
    return ap.parse_args(argv)


def _load_test(args: argparse.Namespace, url: str, proc, result: dict, verdicts: dict[str, bool]) -> None:
    """The --load run: many clients at once; adds result["load"] and the p95 verdict."""
    runner = under_load_http if args.load_client == "http" else under_load
    cpu0, server0 = time.process_time(), _cpu_seconds(proc.pid) if proc else float("nan")
    result["load"] = ld = runner(url, args.clients, args.requests, download=not args.no_download)
    ld["client"] = args.load_client
    ld["cpu_s"] = {"server": round(_cpu_seconds(proc.pid) - server0, 2) if proc else None,
                   "load_generator": round(time.process_time() - cpu0, 2)}
    _table(f"under load: {ld['clients']} {args.load_client} clients × {ld['requests_per_client']} requests"
           f"{'' if ld['downloads'] else ' (no image downloads)'}, {ld['throughput_rps']} req/s, "
           f"{ld['errors']} errors; CPU s: server {ld['cpu_s']['server']}, "
           f"load generator {ld['cpu_s']['load_generator']}", ld["latency"])
    if "encode" in ld["latency"]:
        verdicts[f"encode p95 ≤ {LOAD_TARGET_P95_MS:g} ms under load, no errors"] = \
            ld["latency"]["encode"]["p95_ms"] <= LOAD_TARGET_P95_MS and ld["errors"] == 0


def _through_the_app(args: argparse.Namespace, result: dict, verdicts: dict[str, bool]) -> None:
    """Everything measured over HTTP: the app at --url, or one started here (then also its CPU per request and
    its peak memory)."""
    app = None if args.url else launch(args.weights)
    url, proc = (args.url, None) if app is None else (app.url, app.proc)
    try:
        if not args.no_client:
            result["client"] = through_client(url, args.n)
            _table("through gradio_client (full round trip, sequential)", result["client"])
        if args.load and proc is not None:
            result["cpu_per_request"] = cpu_per_request(url, proc.pid)
            print("\nthe app's CPU per request, one at a time over HTTP (with uploads and image downloads)")
            for k, v in result["cpu_per_request"].items():
                print(f"  {k:34s} {v['app_cpu_ms']:8.1f} ms CPU {v['wall_ms']:9.1f} ms wall")
        if args.load:
            _load_test(args, url, proc, result, verdicts)
        if proc is not None:
            result["server_peak_rss_mib"] = round(peak, 1) if (peak := rss_mib(proc.pid, peak=True)) else None
            print(f"\nthe app's process: peak resident memory {result['server_peak_rss_mib']} MiB (VmHWM)")
    finally:
        if proc is not None:
            stop(proc)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    result: dict = {"machine": {**machine(), "loadavg_at_start": loadavg()},
                    "target": {"encode_median_ms": TARGET_MS, "load_encode_p95_ms": LOAD_TARGET_P95_MS}}
    verdicts: dict[str, bool] = {}
    if not args.no_server:
        result["server"] = server_side(args.weights, args.n)
        _table(f"server-side (handler functions), start-up {result['server']['startup_s']} s", result["server"]["endpoints"])
        encodes = {k: v for k, v in result["server"]["endpoints"].items() if k.startswith("encode[") and "I/O" not in k}
        verdicts[f"server-side encode median < {TARGET_MS:g} ms"] = all(v["median_ms"] < TARGET_MS for v in encodes.values())
    if not args.no_client or args.load:
        _through_the_app(args, result, verdicts)
    result["machine"]["loadavg_at_end"] = loadavg()
    result["verdicts"] = verdicts
    print()
    for what, met in verdicts.items():
        print(f"{'met   ' if met else 'MISSED'}  {what}")
    write("space_latency", result, args.out)
    print(f"load average (1, 5, 15 min) at start {result['machine']['loadavg_at_start']}, at end "
          f"{result['machine']['loadavg_at_end']}: other processes share this CPU")
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

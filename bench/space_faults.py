"""The Space under the faults of issue 23: a flood of component-server calls, one client filling the queue, and a
cache that cannot be written. Writes bench/results/space_faults.json and prints a summary.

    python bench/space_faults.py                     # all three (mounts tmpfs caches when run as root)
    python bench/space_faults.py --skip-cache        # the two load cases only

1. Flood: FLOOD clients call the explorer's ``decode_points`` server function (625 codes on vae-z3) as fast as
   they are answered for FLOOD_S seconds; meanwhile a light client times queued ``/encode_array`` calls.
   Target: its p95 within 2x its idle p95 (it was 21 ms -> 47.7 s).
2. Queue fill: one client (one IP) keeps 300 connections re-sending ``/compare_betas`` as fast as answered,
   while other clients (other IPs) call ``/encode_array`` and ``/generate``. Target: >= 95% of the others'
   calls succeed (90-95% got "503 Queue is full" before). The app runs with VAE_SPACE_TRUST_PROXY=1 and every
   client sends its own X-Forwarded-For, as behind a Space's proxy.
3. Cache faults: the app on VAE_HUB_CACHE = a read-only filesystem holding an empty space/ folder, and = a full
   one (a 1 MiB tmpfs), as root; elsewhere a cache whose every write fails (space/ is a file) stands in for
   both. Every encoder must be ready, /encode_array (each encoder), /compare_betas, /interpolate and /generate
   must answer, and /status must say the cache is not being written.

Every server listens on 127.0.0.1; every load loop is bounded in time and count. Other processes on the machine
(on a 2-core CPU the load generator itself) inflate the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import call, launch, stats, status, stop, write

nan = float("nan")
X = (np.random.default_rng(0).random(784) * 0.6).round(4).tolist()  # a 28×28 input in [0, 1]
FLOODER_IP, OTHER_IP = "203.0.113.7", "198.51.100.{}"


def _from(ip: str) -> dict:
    """The header a Space's proxy adds: the client's IP (the app runs with VAE_SPACE_TRUST_PROXY=1)."""
    return {"x-forwarded-for": ip}


# ---------------------------------------------------------------------------- 1. component-server flood
def _flooder(url: str, clients: int, seconds: float, out) -> None:
    """A process of its own: `clients` connections calling decode_points as fast as answered (bodies not parsed)."""
    import httpx

    async def main() -> dict:
        z = np.random.default_rng(1).uniform(-2, 2, 625 * 3).round(3).tolist()
        counts = {"answered": 0, "busy": 0, "failed": 0}
        started: list = []
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=clients)) as http:
            comp = next(c["id"] for c in (await http.get("/config")).json()["components"]
                        if c.get("props", {}).get("elem_id") == "explore-live")
            stop_at = time.time() + seconds

            async def one(i: int) -> None:
                while time.time() < stop_at:
                    if not started and sum(counts.values()) >= clients:
                        started.append(out.put("under way"))
                    try:
                        r = await http.post("/gradio_api/component_server", json={
                            "data": {"model": "vae-z3", "z": z, "k": 3}, "component_id": comp,
                            "session_hash": f"flood-{i}", "fn_name": "decode_points"})
                        body = r.content
                        key = "failed" if r.status_code != 200 else "busy" if body.startswith(b'{"error"') else "answered"
                    except Exception:
                        key = "failed"
                    counts[key] += 1

            await asyncio.gather(*(one(i) for i in range(clients)))
        return counts

    out.put(asyncio.run(main()))


async def _light(url: str, n: int, gap: float = 0.1) -> tuple[list[float], int]:
    import httpx

    ms, errors = [], 0
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        for _ in range(n):
            t0 = time.perf_counter()
            event, _ = await call(http, "encode_array", [X, "vae-z20"], "light", _from(OTHER_IP.format(250)))
            if event == "complete":
                ms.append((time.perf_counter() - t0) * 1000)
            else:
                errors += 1
            await asyncio.sleep(gap)
    return ms, errors


def flood_case(url: str, clients: int, seconds: float, n: int) -> dict:
    asyncio.run(_light(url, 5))  # warm
    idle, idle_err = asyncio.run(_light(url, n))
    q = mp.get_context("spawn").Queue()
    p = mp.get_context("spawn").Process(target=_flooder, args=(url, clients, seconds, q))
    p.start()
    assert q.get(timeout=120) == "under way"  # every flooder has had an answer
    busy, busy_err = asyncio.run(_light(url, n))
    counts = q.get(timeout=seconds + 120)
    p.join(30)
    res = {"clients": clients, "seconds": seconds, "idle": stats(idle), "flood": stats(busy),
           "light_errors": idle_err + busy_err, "flood_calls": counts}
    timed = res["idle"]["n"] and res["flood"]["n"]
    res["ratio_p95"] = round(res["flood"]["p95_ms"] / max(res["idle"]["p95_ms"], 1e-9), 2) if timed else None
    res["ok"] = bool(timed) and res["ratio_p95"] <= 2.0 and res["light_errors"] == 0
    return res


# ---------------------------------------------------------------------------- 2. one client fills the queue
def _queue_flooder(url: str, connections: int, seconds: float, out) -> None:
    import httpx

    async def main() -> dict:
        counts: dict[str, int] = {}
        started: list = []
        async with httpx.AsyncClient(base_url=url, timeout=120,
                                     limits=httpx.Limits(max_connections=connections)) as http:
            stop_at = time.time() + seconds

            async def one(i: int) -> None:
                while time.time() < stop_at:
                    if not started and sum(counts.values()) >= connections:
                        started.append(out.put("under way"))
                    try:
                        event, _ = await call(http, "compare_betas", ["random test digit", None, i], f"greedy-{i}",
                                              _from(FLOODER_IP))
                    except Exception as e:
                        event = type(e).__name__
                    counts[event] = counts.get(event, 0) + 1

            await asyncio.gather(*(one(i) for i in range(connections)))
        return counts

    out.put(asyncio.run(main()))


async def _others(url: str, clients: int, calls: int, deadline: float) -> dict:
    """`clients` other visitors (own IPs and sessions), each `calls` /encode_array and one /generate, in turn."""
    import httpx

    res: dict[str, dict[str, int]] = {"encode_array": {}, "generate": {}}
    lat: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=90, limits=httpx.Limits(max_connections=clients * 2)) as http:

        async def visitor(i: int) -> None:
            await asyncio.sleep(i * 0.2)
            for k in range(calls + 1):
                if time.time() > deadline:
                    return
                api, data = ("generate", ["vae-z20", 16, k]) if k == calls // 2 else ("encode_array", [X, "vae-z20"])
                t0 = time.perf_counter()
                try:
                    event, _ = await call(http, api, data, f"visitor-{i}", _from(OTHER_IP.format(i + 1)))
                except Exception as e:
                    event = type(e).__name__
                if event == "complete":
                    lat.append((time.perf_counter() - t0) * 1000)
                res[api][event] = res[api].get(event, 0) + 1
                await asyncio.sleep(0.3)

        await asyncio.gather(*(visitor(i) for i in range(clients)))
    return {"calls": res, "latency": stats(lat)}


def queue_case(url: str, connections: int, seconds: float, clients: int, calls: int) -> dict:
    q = mp.get_context("spawn").Queue()
    p = mp.get_context("spawn").Process(target=_queue_flooder, args=(url, connections, seconds, q))
    p.start()
    assert q.get(timeout=120) == "under way"  # every connection has had an answer
    time.sleep(5)  # past the first burst of 300 connections: the siege as it goes on
    others = asyncio.run(_others(url, clients, calls, time.time() + seconds))
    flood = q.get(timeout=seconds + 180)
    p.join(30)
    done = sum(sum(v.values()) for v in others["calls"].values())
    ok = sum(v.get("complete", 0) for v in others["calls"].values())
    return {"flood_connections": connections, "seconds": seconds, "flooder_calls": flood, "others": others,
            "others_success": round(ok / max(done, 1), 4), "ok": done > 0 and ok / done >= 0.95}


# ---------------------------------------------------------------------------- 3. caches that cannot be written
def _mount(path: Path, size: str, read_only: bool) -> bool:
    """A tmpfs at path (root only); read_only: remounted read-only with an empty space/ folder inside."""
    if os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode:
        return False
    (path / "space").mkdir()
    if read_only:
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
    return True


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


async def _serve_check(url: str) -> dict:
    import httpx

    from vae_hub import get_config

    st = await status(url)
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        encoders = [m for m in st["loaded"] if (c := get_config(m)).data != "color" and c.latent == "gaussian"
                    and not c.conditional]  # what a drawing can go into (vae_space.engine.is_encoder)
        answers = {}
        for m in encoders:
            event, out = await call(http, "encode_array", [X, m], "check")
            answers[f"encode_array[{m}]"] = event == "complete" and isinstance(out[0], dict) and len(out[0]["recon"]) == 784
        for api, data in (("compare_betas", ["test digit 3", None, 0]),
                          ("interpolate", ["vae-z20", "test digit 1", None, "test digit 7", None, 8, 0]),
                          ("generate", ["vae-z20", 16, 0])):
            answers[api] = (await call(http, api, data, "check"))[0] == "complete"
    return {"status_cache": st.get("cache"), "loaded": len(st["loaded"]), "missing": st["missing"],
            "answers": answers}


def cache_case(kind: str) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"vae-cache-{kind}-"))
    mounted = _mount(root, "1m" if kind == "full" else "4m", read_only=kind == "read-only")
    if mounted and kind == "full":  # fill it up: a few kB left, less than any cached file
        with open(root / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        how = "tmpfs of 1 MiB, filled"
    elif mounted:
        how = "tmpfs mounted read-only, holding an empty space/ folder"
    else:
        (root / "space").write_text("a file where the cache folder should be: every write fails")
        how = "simulated: not root, space/ is a file so every write fails"
    t0 = time.time()
    proc = None
    try:
        url, proc, log = launch(env={"VAE_HUB_CACHE": str(root)}, ready=True)
        ready_s = time.time() - t0
        check = asyncio.run(_serve_check(url))
        text = log.read_text()
        check.update(how=how, ready_s=round(ready_s, 1), tracebacks=text.count("Traceback"),
                     cache_log_lines=sum("cannot be written" in line for line in text.splitlines()))
        check["ok"] = (all(check["answers"].values()) and check["status_cache"] != "ok" and not check["missing"]
                       and check["tracebacks"] == 0)
        return check
    finally:
        if proc is not None:
            stop(proc)
        if mounted:
            _umount(root)
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flood-clients", type=int, default=64)
    ap.add_argument("--flood-s", type=float, default=25.0)
    ap.add_argument("--light-n", type=int, default=40, help="light calls timed idle and during the flood")
    ap.add_argument("--queue-connections", type=int, default=300)
    ap.add_argument("--queue-s", type=float, default=30.0)
    ap.add_argument("--others", type=int, default=20, help="other clients during the queue flood")
    ap.add_argument("--other-calls", type=int, default=6, help="/encode_array calls per other client (plus one /generate)")
    ap.add_argument("--skip-cache", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    out: dict = {}
    url, proc, log = launch(env={"VAE_SPACE_TRUST_PROXY": "1"}, ready=True)
    try:
        out["flood"] = f = flood_case(url, args.flood_clients, args.flood_s, args.light_n)
        print(f"1. component-server flood ({f['clients']} clients x decode_points(625 codes, vae-z3), {f['seconds']:.0f} s): "
              f"queued /encode_array p95 {f['idle'].get('p95_ms', nan):.1f} ms idle -> "
              f"{f['flood'].get('p95_ms', nan):.1f} ms flooded ({f['ratio_p95'] or nan:.2f}x; target <= 2x) "
              f"[{'OK' if f['ok'] else 'MISSED'}]; flood calls {f['flood_calls']}",
              flush=True)
        out["queue"] = q = queue_case(url, args.queue_connections, args.queue_s, args.others, args.other_calls)
        print(f"2. one client, {q['flood_connections']} connections re-sending /compare_betas ({q['seconds']:.0f} s): "
              f"other clients' calls succeeded {100 * q['others_success']:.1f}% (target >= 95%) "
              f"[{'OK' if q['ok'] else 'MISSED'}]; theirs: {q['others']['calls']}, median/p95 "
              f"{q['others']['latency'].get('median_ms', nan):.0f}/{q['others']['latency'].get('p95_ms', nan):.0f} ms; "
              f"the flooder's: {q['flooder_calls']}", flush=True)
        out["server_log_tracebacks"] = log.read_text().count("Traceback")
    finally:
        stop(proc)
    if not args.skip_cache:
        for kind in ("read-only", "full"):
            out[f"cache_{kind}"] = c = cache_case(kind)
            served = sum(c["answers"].values())
            print(f"3. {kind} cache ({c['how']}): ready in {c['ready_s']:.0f} s, {c['loaded']} variants loaded, "
                  f"{served}/{len(c['answers'])} calls answered (every encoder's /encode_array, /compare_betas, "
                  f"/interpolate, /generate); /status cache: {c['status_cache']!r}; {c['cache_log_lines']} log "
                  f"line(s) about it, {c['tracebacks']} tracebacks [{'OK' if c['ok'] else 'MISSED'}]", flush=True)
    write("space_faults", out, args.out)
    return 0 if all(v.get("ok", True) for v in out.values() if isinstance(v, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())

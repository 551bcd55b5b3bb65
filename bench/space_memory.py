"""Does the Space's memory stay flat under many API calls? Each `POST /gradio_api/call/...` without a session
hash is a new session, and Gradio keeps each session's state (a copy of the page's component values, about
340 kB here) up to `state_session_capacity` sessions. The app caps that (VAE_SPACE_SESSIONS, default 256).

    python bench/space_memory.py                  # 5,000 calls of /encode_array, RSS every 250 calls
    python bench/space_memory.py --calls 1500 --sessions 10000 --out bench/results/space_memory_unbounded.json

Prints the CPU model and the app's resident memory over the calls; writes bench/results/space_memory.json.
Flat means: the growth over the second half of the calls is small against the first half's warm-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from common import RESULTS, launch, machine, rss_mib, stop, write

from vae_hub.data.preprocess import DIGIT_STROKES, render_strokes, to_mnist


def call(http, x: list[float]) -> None:
    r = http.post("/gradio_api/call/encode_array", json={"data": [x, "vae-z20"]})
    r.raise_for_status()
    with http.stream("GET", f"/gradio_api/call/encode_array/{r.json()['event_id']}") as s:
        for line in s.iter_lines():
            if line.startswith("event:") and line[6:].strip() in ("complete", "error"):
                if line[6:].strip() == "error":
                    raise RuntimeError("encode_array failed")
                break


def main(argv: list[str] | None = None) -> int:
    import httpx

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--sessions", type=int, default=None, help="VAE_SPACE_SESSIONS for the app (default: the app's)")
    ap.add_argument("--out", default=RESULTS / "space_memory.json")
    args = ap.parse_args(argv)
    sessions = args.sessions or int(os.environ.get("VAE_SPACE_SESSIONS", 256))
    x = to_mnist(render_strokes(DIGIT_STROKES[7], (280, 280), 20)).ravel().round(4).tolist()
    url, proc, _ = launch(env={"VAE_SPACE_SESSIONS": str(sessions)})
    samples = []
    try:
        with httpx.Client(base_url=url.rstrip("/"), timeout=60) as http, ThreadPoolExecutor(args.clients) as pool:
            call(http, x)  # warm
            t0 = time.time()
            samples.append((0, rss_mib(proc.pid)))
            done = 0
            while done < args.calls:
                n = min(args.every, args.calls - done)
                list(pool.map(lambda _: call(http, x), range(n)))
                done += n
                samples.append((done, rss_mib(proc.pid)))
                print(f"  {done:6d} calls  RSS {samples[-1][1]:7.1f} MiB", flush=True)
            wall = time.time() - t0
    finally:
        stop(proc)
    calls = np.array([c for c, _ in samples], float)
    rss = np.array([r for _, r in samples])
    half = len(samples) // 2
    slope_kb = float(np.polyfit(calls[half:], rss[half:], 1)[0] * 1024) if len(samples) > 3 else float("nan")
    result = {"machine": machine(), "calls": args.calls, "clients": args.clients, "wall_s": round(wall, 1),
              "sessions": sessions,
              "rss_mib": [[int(c), round(r, 1)] for c, r in samples],
              "rss_start_mib": round(float(rss[0]), 1), "rss_end_mib": round(float(rss[-1]), 1),
              "growth_second_half_kb_per_call": round(slope_kb, 2)}
    print(f"\nCPU: {result['machine']['cpu']}; {args.calls} calls of /encode_array from {args.clients} clients in {wall:.0f} s; "
          f"session capacity {result['sessions']}")
    print(f"RSS {result['rss_start_mib']} -> {result['rss_end_mib']} MiB; growth over the second half "
          f"{slope_kb:.1f} kB per call")
    write("space_memory", result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

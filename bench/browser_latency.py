"""The Draw & encode pad in a real browser: headless Chromium (Debian's) driven by Playwright draws the ten
digits with real mouse moves and measures what a visitor sees. Writes bench/results/browser_latency.json
and a screenshot taken mid-stroke, bench/results/browser-mid-stroke.png.

    python bench/browser_latency.py                     # the in-browser runtime (onnxruntime-web), bundled weights
    python bench/browser_latency.py --runtime server    # the server fallback (VAE_SPACE_RUNTIME=server), for comparison
    python bench/browser_latency.py --runtime both      # both, one after the other, into one result file
    python bench/browser_latency.py --url http://127.0.0.1:7860/   # an app that is already running
    python bench/browser_latency.py --static            # the static site (built here, served by http.server)

For each runtime: page load -> pad ready over fresh browser contexts (empty cache; the server already warm),
then two passes of the ten digits (DIGIT_STROKES drawn across 80% of the pad, a mouse move every few
pixels, Clear between digits): the default model (vae-z20), then conv-vae-z20 picked in the Model select.
Per pass:

- updates during a stroke: reconstructions painted while the button is down (``window.vaeDraw.paints``
  with ``in_stroke``), per stroke and per second, and the longest a stroke went without a new one while
  a pointer event waited to be shown (see ``analyse``);
- pointer-move -> painted reconstruction: ``t_painted - t_event`` of every in-stroke paint, where
  ``t_event`` is the timeStamp of the oldest pointer event the paint shows (same clock as performance.now());
  also from the oldest *coalesced* sample of that event, which is earlier when Chromium merged moves;
- mouse-up -> final reconstruction: from the pointerup's timeStamp (recorded by a listener of ours) to the
  first paint started after it;
- server requests while drawing: every request the browser context makes between the first pointer-down
  and the last final paint of the pass, plus the page's own count of fallback requests. The handwriting
  measure the page asks for once a stroke has ended (thickness and slant, outside the live loop) is counted
  apart, as ``handwriting``: at most one per stroke, never waited for.

Targets (issue): pointer-move -> painted p95 <= 50 ms with updates throughout every stroke (here: updates
in every stroke, and never 100 ms without a new one while a pointer event waits to be shown); mouse-up ->
final <= 50 ms (p95 over strokes); page load -> pad ready <= 3 s (every fresh load); no server requests
while drawing with the in-browser runtime. The verdicts are for the in-browser runtime; the fallback's
figures are for comparison.

Playwright sends each mouse move once Chromium has taken the previous one (about one per frame, as a
mouse's moves reach a page aligned to frames), so a busy page is not flooded; an event still waits, and
is timed, from when it was created. Chromium, Playwright and the app share this machine's CPU: the load
average is printed and saved with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from common import CHROMIUM, FLAGS, RESULTS, ROOT, launch, loadavg, machine, rss_mib, static_site, stats, stop, write

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # --static builds the site in this process, from the bundled weights

from vae_hub.data.preprocess import DIGIT_STROKES  # noqa: E402

OUT = RESULTS / "browser_latency.json"
SCREENSHOT = RESULTS / "browser-mid-stroke.png"
VIEWPORT = {"width": 1440, "height": 1000}
MODELS = ("vae-z20", "conv-vae-z20")
TARGET = {"move_to_paint_p95_ms": 50.0, "max_wait_ms": 100.0, "up_to_final_ms": 50.0, "page_ready_s": 3.0,
          "requests_while_drawing": 0}

# Our own listeners, installed before the page's scripts: pointer-down/up timeStamps on the pad and every
# pointer move with the button down (its timeStamp, its oldest coalesced sample's, how many it merged).
INIT = """
(() => {
  const b = window.__bench = { downs: [], ups: [], moves: [] };
  const onPad = (e) => !!(e.target && e.target.classList && e.target.classList.contains('vd-canvas'));
  addEventListener('pointerdown', (e) => { if (onPad(e)) b.downs.push(e.timeStamp); }, true);
  addEventListener('pointermove', (e) => {
    if (!onPad(e) || !e.buttons) return;
    const c = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    b.moves.push([e.timeStamp, c.length ? Math.min(...c.map((x) => x.timeStamp)) : e.timeStamp, c.length || 1]);
  }, true);
  addEventListener('pointerup', (e) => { if (onPad(e)) b.ups.push(e.timeStamp); }, true);
})();
"""
FINAL_PAINTED = """(up) => { const p = window.vaeDraw.paints;
  for (let i = p.length - 1; i >= 0 && p[i].t_painted >= up; i--) if (!p[i].in_stroke) return true;
  return false; }"""
OFFERED = "() => Array.from(document.querySelectorAll(\"select[aria-label='Model'] option\"), (o) => o.value)"
SETTLED = """() => { const a = window.vaeDraw.app; return !a || (!a.busy && !a.dirty && a.pending === null && !a.scheduled); }"""


# ---------------------------------------------------------------------------- one page
RESOURCES = """(ready) => performance.getEntriesByType('resource').filter((e) => e.startTime <= ready).map((e) => ({
    name: e.name, start_ms: Math.round(e.startTime), end_ms: Math.round(e.responseEnd),
    kib: Math.round(e.encodedBodySize / 1024) }))"""


def resources(page, ready_ms: float, keep: int = 8) -> dict:
    """What the page fetched before the pad was ready: how many, how much, and the last to arrive (the tail
    of the critical path)."""
    rs = page.evaluate(RESOURCES, ready_ms)
    for r in rs:
        r["name"] = _short(r["name"])
    return {"n": len(rs), "kib": sum(r["kib"] for r in rs),
            "last": sorted(rs, key=lambda r: r["end_ms"])[-keep:]}


class Session:
    """A fresh browser context on the app: console problems and every request it makes are recorded."""

    def __init__(self, browser, url: str, ready_timeout_s: float = 240):
        self.context = browser.new_context(viewport=VIEWPORT)
        self.context.add_init_script(INIT)
        self.requests: list[tuple[float, str, str]] = []
        self.console: list[str] = []
        self.context.on("request", lambda r: self.requests.append((time.monotonic(), r.method, r.url)))
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        t0 = time.perf_counter()
        self.page.goto(url, wait_until="commit")
        self.page.wait_for_selector("#draw-pad[data-ready='1']", timeout=ready_timeout_s * 1000)
        wall_ms = (time.perf_counter() - t0) * 1000
        self.load = self.page.evaluate("""() => { const n = performance.getEntriesByType('navigation')[0] || {};
            const v = window.vaeDraw; return { ready_ms: v.readyAt, runtime: v.runtime, model: v.model,
            pad_runtime: document.querySelector('#draw-pad').dataset.runtime,
            response_end_ms: n.responseEnd, dom_content_loaded_ms: n.domContentLoadedEventEnd,
            load_event_ms: n.loadEventEnd }; }""")
        self.load["resources"] = resources(self.page, self.load["ready_ms"])
        self.load["wall_ms"] = round(wall_ms, 1)
        self.canvas = self.page.locator("#draw-pad canvas.vd-canvas")
        self.canvas.scroll_into_view_if_needed()

    def eval(self, js: str, arg=None):
        return self.page.evaluate(js, arg)

    def points(self, stroke) -> list[tuple[float, float]]:
        """Unit coordinates -> page pixels across the middle 80% of the pad's bounding box."""
        b = self.canvas.bounding_box()
        return [(b["x"] + (0.1 + 0.8 * x) * b["width"], b["y"] + (0.1 + 0.8 * y) * b["height"]) for x, y in stroke]

    def stroke(self, pts, step_px: float, stop_after: int | None = None) -> None:
        """Press, move through ``pts`` (a mouse move every ``step_px`` pixels), release, and wait for the
        final paint. ``stop_after``: return with the button still down after that many segments."""
        m = self.page.mouse
        m.move(*pts[0])
        m.down()
        for i, (a, b) in enumerate(zip(pts, pts[1:])):
            if stop_after is not None and i == stop_after:
                return
            m.move(*b, steps=max(1, round(math.dist(a, b) / step_px)))
        self.release()

    def release(self) -> None:
        self.page.mouse.up()
        up = self.eval("() => window.__bench.ups[window.__bench.ups.length - 1]")
        try:
            self.page.wait_for_function(FINAL_PAINTED, arg=up, timeout=15_000)
        except Exception:  # counted as a missing final paint
            pass

    def clear(self) -> None:
        self.page.click("#draw-pad button[data-action='clear']")
        self.page.wait_for_function(SETTLED, timeout=15_000)

    def close(self) -> None:
        self.context.close()


# ---------------------------------------------------------------------------- a pass over the digits
def _counts(s: Session) -> dict:
    return s.eval("""() => ({ paints: window.vaeDraw.paints.length, downs: window.__bench.downs.length,
        ups: window.__bench.ups.length, moves: window.__bench.moves.length, updates: window.vaeDraw.updates,
        strokeUpdates: window.vaeDraw.strokeUpdates, serverRequests: window.vaeDraw.serverRequests,
        measures: window.vaeDraw.measures })""")


def analyse(paints: list[dict], downs: list[float], ups: list[float], moves: list[list[float]]) -> dict:
    """The figures of one pass from the page's records (all times in ms on the page's performance.now() clock).

    The longest wait of a stroke is the longest time the pad showed no new reconstruction while a pointer
    event was waiting to be shown: for each paint of the stroke (those during it, then the final one),
    ``t_painted - max(previous paint's t_painted, t_event)``, the first measured from the pointer-down.
    Pauses in the input itself (nothing to show) do not count."""
    oldest = {t: t0 for t, t0, _ in moves}  # a dispatched move's timeStamp -> its oldest coalesced sample
    lat, lat_raw, per_stroke, moves_in, waits, up_lat, stroke_ms = [], [], [], [], [], [], []
    rows: list[dict] = []
    for d, u in zip(downs, ups):
        mine = sorted((p for p in paints if p["in_stroke"] and d <= p["t_event"] <= u), key=lambda p: p["t_painted"])
        final = min((p for p in paints if not p["in_stroke"] and p["t_painted"] >= u), key=lambda p: p["t_painted"],
                    default=None)
        per_stroke.append(len(mine))
        moves_in.append(sum(1 for t, _, _ in moves if d <= t <= u))
        stroke_ms.append(u - d)
        for p in mine:
            lat.append(p["t_painted"] - p["t_event"])
            lat_raw.append(p["t_painted"] - min(p["t_event"], oldest.get(p["t_event"], p["t_event"])))
        prev, wait = d, 0.0
        for p in mine + ([final] if final else []):
            wait = max(wait, p["t_painted"] - max(prev, p["t_event"]))
            prev = p["t_painted"]
        waits.append(wait)
        if final:
            up_lat.append(final["t_painted"] - u)
        rows.append({"ms": round(u - d, 1), "moves": moves_in[-1], "updates": len(mine), "longest_wait_ms": round(wait, 1),
                     "up_to_final_ms": round(final["t_painted"] - u, 1) if final else None})
    total_s = sum(stroke_ms) / 1000
    return {
        "strokes": len(per_stroke), "pointer_moves": len(moves), "move_samples": sum(int(c) for _, _, c in moves),
        "coalesced_moves": sum(1 for _, _, c in moves if c > 1),
        "moves_per_stroke": {"median": float(np.median(moves_in)) if moves_in else 0, "min": int(min(moves_in, default=0))},
        "stroke_ms": stats(stroke_ms),
        "in_stroke_updates": int(sum(per_stroke)),
        "updates_per_stroke": {"median": float(np.median(per_stroke)) if per_stroke else 0,
                               "min": int(min(per_stroke, default=0)), "max": int(max(per_stroke, default=0))},
        "updates_per_s": round(sum(per_stroke) / total_s, 1) if total_s else 0.0,
        "strokes_without_update": sum(1 for n in per_stroke if n == 0),
        "longest_wait_ms": stats(waits),
        "longest_wait_after_first_stroke_ms": round(max(waits[1:]), 1) if len(waits) > 1 else None,
        "move_to_paint": stats(lat),
        "move_to_paint_from_oldest_sample": stats(lat_raw),
        "up_to_final": stats(up_lat),
        "finals_missing": sum(1 for r in rows if r["up_to_final_ms"] is None),
        "per_stroke": rows,
    }


def run_pass(s: Session, model: str, repeats: int, step_px: float, shot: Path | None, check=lambda: None) -> dict:
    """Draw every digit ``repeats`` times with ``model``, Clear between digits; the figures of the pass.
    ``check()`` runs after every digit (it raises when the app has gone)."""
    if s.eval("() => window.vaeDraw.model") != model:
        s.page.select_option("#draw-pad select[aria-label='Model'], select[aria-label='Model']", model)
        s.page.wait_for_function("(m) => window.vaeDraw.model === m", arg=model, timeout=60_000)
    s.clear()
    c0 = _counts(s)
    req0 = len(s.requests)
    t_start = time.monotonic()
    first_update_ms = None
    for _ in range(repeats):
        for strokes in DIGIT_STROKES.values():
            for stroke in strokes:
                s.stroke(s.points(stroke), step_px)
            if first_update_ms is None:  # the first paint after switching to the model (its graphs load lazily)
                first_update_ms = s.eval("(n) => { const p = window.vaeDraw.paints[n]; "
                                         "return p ? p.t_painted - p.t_event : null; }", c0["paints"])
            s.clear()
            check()
    t_end = time.monotonic()
    c1 = _counts(s)
    rec = s.eval("""([p, d, u, m]) => ({ paints: window.vaeDraw.paints.slice(p), downs: window.__bench.downs.slice(d),
        ups: window.__bench.ups.slice(u), moves: window.__bench.moves.slice(m) })""",
                 [c0["paints"], c0["downs"], c0["ups"], c0["moves"]])
    out = {"model": model, "digits": len(DIGIT_STROKES), "repeats": repeats, "step_px": step_px,
           **analyse(rec["paints"], rec["downs"], rec["ups"], rec["moves"]),
           "updates": c1["updates"] - c0["updates"], "stroke_updates": c1["strokeUpdates"] - c0["strokeUpdates"],
           "first_update_ms": None if first_update_ms is None else round(first_update_ms, 1)}
    seen = [(m, u) for t, m, u in s.requests[req0:] if t_start <= t <= t_end]
    n_hand, hand, reqs = c1["measures"] - c0["measures"], 0, []
    for m, u in seen:  # set apart as many server-function calls as the page counts handwriting measures
        if hand < n_hand and u.split("?")[0].rstrip("/").endswith(("/component_server", "/vh-call/handwriting")):
            hand += 1
        else:
            reqs.append((m, u))
    files = [u for _, u in reqs if "/vh/" in u or "/files/" in u]  # the Space's files, the static site's
    fallback = c1["serverRequests"] - c0["serverRequests"]
    n_strokes = repeats * sum(len(st) for st in DIGIT_STROKES.values())
    out["requests"] = {"network": len(reqs), "files": len(files),
                       "other": len(reqs) - len(files), "page_fallback_requests": fallback,
                       "handwriting": c1["measures"] - c0["measures"], "strokes": n_strokes,
                       "samples": [f"{m} {_short(u)}" for m, u in reqs[:8]]}
    if shot is not None:
        mid_stroke_screenshot(s, shot, step_px)
    return out


def _short(url: str) -> str:
    """A fetched URL as the results show it: served files named relative to the project (or as ~/…), not by
    this machine's absolute paths."""
    path = "/" + url.split("//", 1)[-1].split("/", 1)[-1]
    for base, shown in ((str(ROOT) + "/", ""), (str(Path.home()) + "/", "~/")):
        path = path.replace("file=" + base, "file=" + shown)
    return path if len(path) <= 91 else path[:41] + "…" + path[-45:]


def mid_stroke_screenshot(s: Session, path: Path, step_px: float, digit: int = 8) -> None:
    """A digit drawn two-thirds of the way, button still down, once a reconstruction of it is painted."""
    pts = s.points(DIGIT_STROKES[digit][0])
    n = s.eval("() => window.vaeDraw.paints.length")
    s.stroke(pts, step_px, stop_after=(2 * (len(pts) - 1)) // 3)
    s.page.wait_for_function("(n) => { const p = window.vaeDraw.paints; return p.length > n && p[p.length - 1].in_stroke "
                             "&& window.vaeDraw.app && !window.vaeDraw.app.busy && window.vaeDraw.app.pending === null; }",
                             arg=n, timeout=15_000)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = s.page.locator("#draw-live")
    (target if target.count() else s.page).screenshot(path=str(path))
    s.release()
    s.clear()


# ---------------------------------------------------------------------------- one runtime
def run_runtime(browser, url: str, runtime: str, loads: int, repeats: int, step_px: float,
                shot: Path | None, check=lambda: None) -> dict:
    out: dict = {"requested": runtime}
    first = Session(browser, url)  # the first visit after start-up also waits for the server to prepare the models
    out["first_load"] = first.load
    console = list(first.console)
    first.close()
    fresh = []
    for i in range(loads):
        s = Session(browser, url)
        fresh.append(s.load)
        console += s.console
        if i < loads - 1:
            s.close()
    out["runtime"] = s.load["runtime"]
    out["page_load"] = {"fresh": fresh, "ready": stats([f["ready_ms"] for f in fresh]),
                        "dom_content_loaded": stats([f["dom_content_loaded_ms"] for f in fresh]),
                        "load_event": stats([f["load_event_ms"] for f in fresh])}
    passes = {}
    try:
        for i, model in enumerate(MODELS):
            if model not in s.eval(OFFERED):
                passes[model] = {"model": model, "skipped": "not offered in the Model select"}
                continue
            passes[model] = run_pass(s, model, repeats, step_px, shot if i == 0 else None, check)
    finally:
        console += s.console
        s.close()
    out["passes"] = passes
    out["console"] = console
    return out


# ---------------------------------------------------------------------------- report
def verdicts(run: dict) -> dict[str, bool]:
    v: dict[str, bool] = {}
    pl = run["page_load"]["ready"]
    if pl.get("n"):
        v[f"page load → pad ready ≤ {TARGET['page_ready_s']:g} s (every fresh load)"] = \
            pl["max_ms"] <= 1000 * TARGET["page_ready_s"]
    for model, p in run["passes"].items():
        if "skipped" in p:
            continue
        mp, wait = p["move_to_paint"], p["longest_wait_ms"]
        v[f"{model}: pointer-move → painted p95 ≤ {TARGET['move_to_paint_p95_ms']:g} ms, updates throughout every stroke "
          f"(an update in every stroke, never over {TARGET['max_wait_ms']:g} ms without one while input waits)"] = bool(
            mp.get("n") and mp["p95_ms"] <= TARGET["move_to_paint_p95_ms"] and p["strokes_without_update"] == 0
            and wait["max_ms"] <= TARGET["max_wait_ms"])
        up = p["up_to_final"]
        v[f"{model}: mouse-up → final reconstruction ≤ {TARGET['up_to_final_ms']:g} ms (p95 over strokes)"] = bool(
            up.get("n") and up["p95_ms"] <= TARGET["up_to_final_ms"] and p["finals_missing"] == 0)
        r = p["requests"]
        v[f"{model}: no server requests while drawing (the handwriting measure after a stroke apart, ≤ 1 per stroke)"] = \
            r["other"] == 0 and r["page_fallback_requests"] == 0 and r.get("handwriting", 0) <= r.get("strokes", 0)
        # (files may come meanwhile: the neighbours' pictures, a class at a time, once a stroke ends)
    return v


def print_run(run: dict) -> None:
    pl = run["page_load"]
    fl = run["first_load"]
    print(f"\nruntime: {run['runtime']} (asked for {run['requested']})")
    print(f"  page load → pad ready: median {pl['ready'].get('median_ms', float('nan')):.0f} ms, max "
          f"{pl['ready'].get('max_ms', float('nan')):.0f} ms over {pl['ready'].get('n', 0)} fresh contexts (empty cache); "
          f"DOMContentLoaded {pl['dom_content_loaded'].get('median_ms', float('nan')):.0f} ms, load event "
          f"{pl['load_event'].get('median_ms', float('nan')):.0f} ms; first visit after start-up {fl['ready_ms']:.0f} ms")
    res = pl["fresh"][-1]["resources"] if pl["fresh"] else None
    if res:
        print(f"  before ready (last fresh load): {res['n']} requests, {res['kib']:,} KiB; last to arrive: "
              + ", ".join(f"{r['name'].rsplit('/', 1)[-1][:40]} {r['start_ms']}–{r['end_ms']} ms" for r in res["last"][-4:]))
    head = (f"  {'model':14s} {'strokes':>7s} {'moves':>6s} {'upd/stroke':>10s} {'upd/s':>6s} {'max wait':>8s} "
            f"{'move→paint med':>14s} {'p95':>6s} {'max':>6s} {'up→final med':>12s} {'p95':>6s} {'max':>6s} {'requests':>8s}")
    print(head)
    for model, p in run["passes"].items():
        if "skipped" in p:
            print(f"  {model:14s} skipped: {p['skipped']}")
            continue
        mp, up, g = p["move_to_paint"], p["up_to_final"], p["longest_wait_ms"]
        f = lambda d, k: f"{d[k]:.1f}" if d.get("n") else "—"  # noqa: E731
        print(f"  {model:14s} {p['strokes']:7d} {p['pointer_moves']:6d} "
              f"{p['updates_per_stroke']['median']:>5.0f} (≥{p['updates_per_stroke']['min']:d}) {p['updates_per_s']:6.1f} "
              f"{f(g, 'max_ms'):>8s} {f(mp, 'median_ms'):>14s} {f(mp, 'p95_ms'):>6s} {f(mp, 'max_ms'):>6s} "
              f"{f(up, 'median_ms'):>12s} {f(up, 'p95_ms'):>6s} {f(up, 'max_ms'):>6s} {p['requests']['network']:8d}")
    for model, p in run["passes"].items():
        if "skipped" in p:
            continue
        raw = p["move_to_paint_from_oldest_sample"]
        print(f"  {model}: {p['in_stroke_updates']} updates during strokes ({p['updates']} in all); strokes take "
              f"{p['stroke_ms'].get('median_ms', 0):.0f} ms (median); {p['coalesced_moves']} of {p['pointer_moves']} moves "
              f"merged samples, from the oldest sample p95 {raw.get('p95_ms', float('nan')):.1f} ms; first update after "
              f"picking the model {p['first_update_ms']} ms (longest wait after the first stroke "
              f"{p['longest_wait_after_first_stroke_ms']} ms); {p['finals_missing']} final paints missing")
        r = p["requests"]
        if r["network"] or r["page_fallback_requests"]:
            print(f"    requests while drawing: {r['network']} over the network ({r['files']} static files, {r['other']} "
                  f"other), {r['page_fallback_requests']} counted by the page: " + "; ".join(r["samples"][:4]))
    if run["console"]:
        print(f"  console: {len(run['console'])} errors/warnings, e.g. " + " | ".join(c[:160] for c in run["console"][:3]))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runtime", choices=["browser", "server", "both"], default="browser")
    ap.add_argument("--static", action="store_true",
                    help="the static site instead of the Gradio Space (-> browser_latency_static.json)")
    ap.add_argument("--repeats", type=int, default=2, help="times each digit is drawn per model")
    ap.add_argument("--loads", type=int, default=5, help="fresh page loads timed per runtime")
    ap.add_argument("--step-px", type=float, default=6.0, help="pixels between mouse moves")
    ap.add_argument("--weights", default=None, help="as for space/app.py (default: the bundled pretrained/)")
    ap.add_argument("--url", default=None, help="measure a running app (its runtime is whatever it serves)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--screenshot", type=Path, default=SCREENSHOT)
    return ap.parse_args(argv)


def _one_runtime(browser, args: argparse.Namespace, rt: str, screenshot: Path | None) -> dict:
    """One runtime: the app at --url, or one started here with that runtime (then also its peak memory)."""
    app = None if args.url else launch(args.weights, {"VAE_SPACE_RUNTIME": "server"} if rt == "server" else None)

    def check() -> None:
        if app is not None and app.proc.poll() is not None:
            raise RuntimeError(f"the app exited during the run (code {app.proc.returncode}); log {app.log}")

    try:
        run = run_runtime(browser, args.url or app.url, rt, args.loads, args.repeats, args.step_px, screenshot, check)
        if app is not None:
            run["server_peak_rss_mib"] = round(peak, 1) if (peak := rss_mib(app.proc.pid, peak=True)) else None
    finally:
        if app is not None:
            stop(app.proc)
    return run


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if not args.static:
        return measure(args, ["browser", "server"] if args.runtime == "both" else [args.runtime])
    with static_site(args.weights) as (args.url, _):  # no server: the in-browser runtime only
        if args.out == OUT:  # its results and screenshot under their own names
            args.out = OUT.with_name("browser_latency_static.json")
        if args.screenshot == SCREENSHOT:
            args.screenshot = SCREENSHOT.with_name("browser-mid-stroke-static.png")
        return measure(args, ["browser"], "static site")


def measure(args: argparse.Namespace, runtimes: list[str], host: str = "Gradio Space") -> int:
    """Every runtime in turn: print and write the figures and the verdicts; 0 when every target is met."""
    from playwright.sync_api import sync_playwright

    mach = {**machine(), "loadavg_at_start": loadavg()}
    print(f"CPU: {mach['cpu']} ({mach['cores']} cores); load average {mach['loadavg_at_start']}")
    result: dict = {"machine": mach, "target": TARGET, "runs": {}, "host": host}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        mach["chromium"] = browser.version
        mach["playwright"] = _version("playwright")
        print(f"Chromium {browser.version} (headless), Playwright {mach['playwright']}, viewport "
              f"{VIEWPORT['width']}×{VIEWPORT['height']}")
        try:
            for i, rt in enumerate(runtimes):
                run = _one_runtime(browser, args, rt, args.screenshot if i == 0 else None)
                result["runs"][run["runtime"] or rt] = run
                print_run(run)
        finally:
            browser.close()
    mach["loadavg_at_end"] = loadavg()
    browser_run = result["runs"].get("browser")
    result["verdicts"] = verdicts(browser_run) if browser_run else {}
    print()
    for what, met in result["verdicts"].items():
        print(f"{'met   ' if met else 'MISSED'}  {what}")
    if not browser_run:
        print("(no verdicts: the targets are for the in-browser runtime)")
    write("browser_latency", result, args.out)
    if args.screenshot.is_file():
        print(f"and {args.screenshot}")
    print(f"load average (1, 5, 15 min) at start {mach['loadavg_at_start']}, at end {mach['loadavg_at_end']}: "
          "Chromium, Playwright and the app share this CPU")
    return 0 if all(result["verdicts"].values()) else 1


def _version(pkg: str) -> str | None:
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        return version(pkg)
    return None


if __name__ == "__main__":
    sys.exit(main())

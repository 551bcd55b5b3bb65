"""A new visitor's first and repeat visit over a real network: headless Chromium (Debian's) with its own network
emulation (CDP ``Network.emulateNetworkConditions``), an empty profile per first visit, drawing a 7 the moment the
pad shows. Writes bench/results/first_visit.json and a screenshot of the first reconstruction under the slow profile
(bench/results/first-visit-slow.png).

    python bench/first_visit.py                          # both hosts, both profiles, 3 first + repeat visits each
    python bench/first_visit.py --runs 1 --profiles fast # one profile, once
    python bench/first_visit.py --hosts gradio --url http://127.0.0.1:7860/   # an app that is already running

Hosts: the Gradio Space (`python space/app.py`), and the static site (`python -m vae_space.static`, built into a
temporary folder and served by Python's own http.server, which sends no compression and no caching headers: the
site's zstd and gzip copies and content-addressed names are all it has).

Per visit: when the pad went live (it takes strokes: answered by the server until the in-browser runtime is
ready), when the first reconstruction was painted (the page's clock: ms after navigation start), which runtime
painted it, when the in-browser runtime took over, and the bytes on the wire (CDP ``encodedDataLength``: headers and
bodies as transferred, compressed where they were; 0 for what came from the browser's cache) until the tab has
settled (the runtime in, the neighbour pictures in, no request in flight for a second). The largest transfers are
printed. After the first visit the other tabs are opened one by one and each tab's bytes on its first opening are
counted.

Targets (issue 22), at 20 Mbit/s down, 5 up, 40 ms: first reconstruction <= 3 s and <= 5 MiB on a first visit,
<= 1.5 s and <= 0.5 MiB on a repeat visit; at 5 Mbit/s, 150 ms: first reconstruction <= 8 s. Before the visits the
bench waits until the app has prepared every model and made its compressed copies (``/status``:
``assets_compressing`` 0), as on a Space that has been up for a minute.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import CHROMIUM, FLAGS, RESULTS, launch, machine, static_site, stop, wait_ready, write

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the static site is built in this process, from the bundled weights

from vae_hub.data.preprocess import DIGIT_STROKES  # noqa: E402

OUT = RESULTS / "first_visit.json"
SHOT = RESULTS / "first-visit-slow.png"
MIB = 2**20
PROFILES = {  # name: (down bit/s, up bit/s, round trip ms)
    "fast": (20e6, 5e6, 40),
    "slow": (5e6, 1e6, 150),
}
TARGET = {"fast": {"first_ms": 3000, "first_mib": 5.0, "repeat_ms": 1500, "repeat_mib": 0.5},
          "slow": {"first_ms": 8000}}
VIEWPORT = {"width": 1440, "height": 1000}
TABS = ["Interpolate", "β comparison", "Latent explorer", "Generate", "Models"]
STREAMS = ("/heartbeat/", "/queue/data")  # event streams that stay open: not "in flight" for settling
LIVE = """() => { const c = document.querySelector("#draw-pad[data-live='1'] canvas.vd-canvas");
  if (!c) return false; const b = c.getBoundingClientRect(); return b.width > 0 && b.height > 0; }"""


class Wire:
    """Every request of one page as CDP reports it: URL, bytes on the wire, from cache, finished."""

    def __init__(self, context, page, profile: tuple[float, float, float]):
        down, up, rtt = profile
        self.cdp = context.new_cdp_session(page)
        self.cdp.send("Network.enable")
        self.cdp.send("Network.setCacheDisabled", {"cacheDisabled": False})
        self.cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": rtt,
                                                           "downloadThroughput": down / 8, "uploadThroughput": up / 8})
        self.req: dict[str, dict] = {}
        self.cdp.on("Network.requestWillBeSent", self._sent)
        self.cdp.on("Network.responseReceived", self._response)
        self.cdp.on("Network.dataReceived", self._data)
        self.cdp.on("Network.loadingFinished", self._finished)
        self.cdp.on("Network.loadingFailed", self._failed)

    def _sent(self, e: dict) -> None:
        self.req[e["requestId"]] = {"url": e["request"]["url"], "t": time.monotonic(), "bytes": 0, "done": False,
                                    "cache": False, "status": None, "active": time.monotonic()}

    def _response(self, e: dict) -> None:
        r = self.req.get(e["requestId"])
        if r is not None:
            resp = e["response"]
            r["status"], r["active"] = resp.get("status"), time.monotonic()
            r["cache"] = bool(resp.get("fromDiskCache") or resp.get("fromMemoryCache") or resp.get("fromServiceWorker"))

    def _data(self, e: dict) -> None:
        r = self.req.get(e["requestId"])
        if r is not None and not r["done"]:
            r["bytes"] += e.get("encodedDataLength", 0)
            r["active"] = time.monotonic()

    def _finished(self, e: dict) -> None:
        r = self.req.get(e["requestId"])
        if r is not None:
            r["bytes"], r["done"] = e.get("encodedDataLength", r["bytes"]), True

    def _failed(self, e: dict) -> None:
        r = self.req.get(e["requestId"])
        if r is not None:
            r["done"] = True

    def mark(self) -> set[str]:
        return set(self.req)

    def since(self, mark: set[str] | None = None) -> list[dict]:
        return [r for k, r in self.req.items() if mark is None or k not in mark]

    def in_flight(self, idle_s: float = 3.0) -> int:
        """Requests still moving: not finished, and started, answered or receiving data within ``idle_s`` (the
        worker's own request for the runtime's script is reported started and never answered nor finished)."""
        now = time.monotonic()
        return sum(1 for r in self.req.values() if not r["done"] and r["url"].startswith("http")
                   and not any(s in r["url"] for s in STREAMS) and now - r["active"] < idle_s)

    def settle(self, page, quiet_s: float = 1.0, timeout_s: float = 120.0) -> None:
        """Wait until no request (event streams apart) has been in flight for ``quiet_s``."""
        t0 = last_busy = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            page.wait_for_timeout(100)
            if self.in_flight():
                last_busy = time.monotonic()
            elif time.monotonic() - last_busy >= quiet_s:
                return


NAMES = """() => { const o = {}, a = window.vaeDraw && window.vaeDraw.app; if (!a) return o;
  for (const [k, s] of Object.entries(a.m.models)) if (s.encoder) {
    o[s.encoder] = `${k} encoder`; o[s.decoder] = `${k} decoder`; o[s.codes] = `${k} test codes`; }
  return o; }"""


def kind(url: str) -> str:
    """What a request is, for the account of where the bytes go."""
    name = url.split("?")[0].rsplit("/", 1)[-1].removesuffix(".gz").removesuffix(".zst")  # the static site's copies
    if "/vh/" not in url and "/files/" not in url and "/web/" not in url:
        return "the page (HTML, manifest, Gradio's scripts)"
    if name.startswith("ort"):
        return "onnxruntime-web"
    return {".onnx": "ONNX graphs", ".png": "map picture", ".js": "our modules", ".mjs": "our modules",
            ".css": "our modules"}.get(
        name[name.rfind("."):], "test digits and codes")


def summary(reqs: list[dict], top: int = 8, names: dict[str, str] | None = None) -> dict:
    wire = [r for r in reqs if r["url"].startswith("http")]
    biggest = sorted(wire, key=lambda r: -r["bytes"])[:top]
    by_kind: dict[str, float] = {}
    for r in wire:
        by_kind[kind(r["url"])] = by_kind.get(kind(r["url"]), 0) + r["bytes"] / MIB
    return {"mib": round(sum(r["bytes"] for r in wire) / MIB, 3), "requests": len(wire),
            "from_cache": sum(1 for r in wire if r["cache"]),
            "by_kind": {k: round(v, 3) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
            "largest": [{"kib": round(r["bytes"] / 1024, 1), "url": _short(r["url"]),
                         "what": (names or {}).get(r["url"]) or r["url"].split("?")[0].rsplit("/", 1)[-1]}
                        for r in biggest if r["bytes"]]}


def _short(url: str) -> str:
    """A request's path as the results show it: without the host, and without the server folder that Gradio's
    ``file=`` URLs carry (results name what a visitor downloads, not where the bench machine kept it)."""
    path = "/" + url.split("//", 1)[-1].split("/", 1)[-1]
    if "/file=" in path:
        path = path.split("/file=", 1)[0] + "/file=…/" + path.rsplit("/", 1)[-1]
    return path if len(path) <= 80 else path[:38] + "…" + path[-40:]


def draw_seven(page) -> None:
    """A 7 across the middle of the pad with mouse moves (Playwright sends each once the page took the last)."""
    box = page.locator("#draw-pad canvas.vd-canvas").bounding_box()
    margin = 0.12
    side = (1 - 2 * margin) * box["width"]
    for stroke in DIGIT_STROKES[7]:
        pts = [(box["x"] + box["width"] * margin + x * side, box["y"] + box["height"] * margin + y * side) for x, y in stroke]
        page.mouse.move(*pts[0])
        page.mouse.down()
        for x, y in pts[1:]:
            page.mouse.move(x, y, steps=12)
        page.mouse.up()


def visit(context, url: str, profile: tuple, shot: Path | None = None) -> dict:
    """One visit in ``context`` (an empty profile for a first visit, the same one for a repeat)."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    wire = Wire(context, page, profile)
    page.goto(url, wait_until="commit")
    # checked every animation frame: Playwright's wait_for_selector backs off to polling every 500 ms, and the
    # visitor starts drawing when the pad shows, not when a poll notices
    page.wait_for_function(LIVE, polling="raf", timeout=180_000)
    draw_seven(page)
    page.wait_for_function("() => window.vaeDraw.paints.length > 0", timeout=120_000)
    if shot is not None:
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.locator("#draw-live").screenshot(path=str(shot))
    page.wait_for_function("() => window.vaeDraw.ready", timeout=180_000)
    page.wait_for_function("() => { const a = window.vaeDraw.app; return a.images !== null; }", timeout=180_000)
    wire.settle(page)
    st = page.evaluate("""() => { const v = window.vaeDraw, p = v.paints[0];
        return { live_ms: v.liveAt, first_ms: p.t_painted, first_event_ms: p.t_event, browser_ms: v.readyAt,
                 runtime: v.runtime, server_requests: v.serverRequests,
                 first_runtime: v.firstRuntime || null }; }""")
    out = {k: (round(v) if isinstance(v, float) else v) for k, v in st.items()}
    out.update(summary(wire.since(), names=page.evaluate(NAMES)))
    out["errors"] = errors
    return out | {"_page": page, "_wire": wire}


def open_tabs(page, wire: Wire) -> dict:
    """Each other tab's bytes on its first opening (after the Draw tab has settled)."""
    out = {}
    for name in TABS:
        if not page.get_by_role("tab", name=name).count():
            continue
        tab = page.get_by_role("tab", name=name)
        if not tab.count():
            continue
        mark = wire.mark()
        tab.first.click()
        page.wait_for_timeout(500)
        wire.settle(page, quiet_s=1.5)
        out[name] = summary(wire.since(mark), top=4)
    return out


def run_profile(browser_type, url: str, name: str, runs: int, shot: Path | None) -> dict:
    profile = PROFILES[name]
    firsts, repeats, tabs = [], [], None
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="first-visit-") as profile_dir:
            ctx = browser_type.launch_persistent_context(profile_dir, executable_path=CHROMIUM, args=FLAGS,
                                                         viewport=VIEWPORT)
            try:
                first = visit(ctx, url, profile, shot if i == 0 else None)
                page, wire = first.pop("_page"), first.pop("_wire")
                if i == 0:
                    tabs = open_tabs(page, wire)
                page.close()
                repeat = visit(ctx, url, profile)
                repeat.pop("_page").close()
                repeat.pop("_wire")
            finally:
                ctx.close()
        firsts.append(first)
        repeats.append(repeat)
        print(f"  {name} run {i + 1}: first visit: live {first['live_ms'] / 1000:.2f} s, first reconstruction "
              f"{first['first_ms'] / 1000:.2f} s ({first['first_runtime'] or '?'}), in-browser runtime "
              f"{first['browser_ms'] / 1000:.2f} s, {first['mib']:.2f} MiB in {first['requests']} requests; repeat: "
              f"first reconstruction {repeat['first_ms'] / 1000:.2f} s ({repeat['first_runtime'] or '?'}), "
              f"{repeat['mib']:.2f} MiB (live {repeat['live_ms'] / 1000:.2f} s, first stroke "
              f"{repeat['first_event_ms'] / 1000:.2f} s)", flush=True)
    return {"profile": {"down_mbit": profile[0] / 1e6, "up_mbit": profile[1] / 1e6, "rtt_ms": profile[2]},
            "first": firsts, "repeat": repeats, "tabs": tabs,
            "median": {"first_ms": _med(firsts, "first_ms"), "first_mib": _med(firsts, "mib"),
                       "live_ms": _med(firsts, "live_ms"), "browser_ms": _med(firsts, "browser_ms"),
                       "repeat_ms": _med(repeats, "first_ms"), "repeat_mib": _med(repeats, "mib")},
            "worst": {"first_ms": max(r["first_ms"] for r in firsts), "first_mib": max(r["mib"] for r in firsts),
                      "repeat_ms": max(r["first_ms"] for r in repeats), "repeat_mib": max(r["mib"] for r in repeats)}}


def _med(rows: list[dict], key: str) -> float:
    return round(float(np.median([r[key] for r in rows])), 3)


def verdicts(results: dict) -> dict[str, bool]:
    v = _verdicts(results["profiles"], "Gradio Space")
    if results.get("static"):
        v.update(_verdicts(results["static"]["profiles"], "static site"))
    return v


def _verdicts(profiles: dict, host: str) -> dict[str, bool]:
    v = {}
    for name, t in TARGET.items():
        r = profiles.get(name)
        if not r:
            continue
        p = r["profile"]
        where = f"{host}, {p['down_mbit']:g} Mbit/s, {p['rtt_ms']:g} ms"
        m = r["median"]
        v[f"{where}: first reconstruction, first visit <= {t['first_ms'] / 1000:g} s"] = m["first_ms"] <= t["first_ms"]
        if "first_mib" in t:
            v[f"{where}: bytes on the wire, first visit <= {t['first_mib']:g} MiB"] = m["first_mib"] <= t["first_mib"]
            v[f"{where}: repeat visit, first reconstruction <= {t['repeat_ms'] / 1000:g} s"] = m["repeat_ms"] <= t["repeat_ms"]
            v[f"{where}: repeat visit, bytes on the wire <= {t['repeat_mib']:g} MiB"] = m["repeat_mib"] <= t["repeat_mib"]
    return v


def print_results(results: dict) -> None:
    m = results["machine"]
    print(f"\nCPU: {m['cpu']} ({m['cores']} cores); Chromium {results['chromium']}; medians of {results['runs']} run(s)")
    static = (results.get("static") or {}).get("profiles", {})
    for host, profiles in (("Gradio Space", results["profiles"]), ("static site", static)):
        if profiles:
            print(f"\n{host}:")
            print_host(profiles)
    errors = [e for r in [*results["profiles"].values(), *static.values()] for v in r["first"] + r["repeat"]
              for e in v["errors"]]
    if errors:
        print(f"\nconsole errors: {len(errors)}: " + "; ".join(errors[:5]))
    print()
    for what, ok in verdicts(results).items():
        print(f"{'met' if ok else 'NOT MET'}: {what}")


def print_host(profiles: dict) -> None:
    print("| profile | visit | pad live | first reconstruction | in-browser runtime | MiB on the wire | requests |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in profiles.values():
        p, md = r["profile"], r["median"]
        where = f"{p['down_mbit']:g}/{p['up_mbit']:g} Mbit/s, {p['rtt_ms']:g} ms"
        print(f"| {where} | first | {md['live_ms'] / 1000:.2f} s | {md['first_ms'] / 1000:.2f} s | "
              f"{md['browser_ms'] / 1000:.2f} s | {md['first_mib']:.2f} | {r['first'][0]['requests']} |")
        print(f"| {where} | repeat | | {md['repeat_ms'] / 1000:.2f} s | | {md['repeat_mib']:.2f} | "
              f"{r['repeat'][0]['requests']} ({r['repeat'][0]['from_cache']} from cache) |")
    for name, r in profiles.items():
        print(f"\nlargest transfers, first visit ({name}):")
        for x in r["first"][0]["largest"]:
            print(f"  {x['kib']:9.1f} KiB  {x['what']:24s} {x['url']}")
        print("  by kind: " + ", ".join(f"{k} {v:.2f} MiB" for k, v in r["first"][0]["by_kind"].items()))
        if r.get("tabs"):
            print(f"each tab's first opening ({name}): " + "; ".join(f"{t} {s['mib']:.2f} MiB in {s['requests']} requests"
                                                               for t, s in r["tabs"].items()))


def run_static(p, profiles: list[str], runs: int) -> dict:
    with static_site() as (url, summary):
        print(f"static site: {summary['files']} files, {summary['bytes'] / MIB:.1f} MiB, built in "
              f"{summary['seconds']:.0f} s")
        return {"site": summary, "profiles": {n: run_profile(p.chromium, url, n, runs, None) for n in profiles}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", nargs="+", default=["gradio", "static"], choices=["gradio", "static"])
    ap.add_argument("--url", help="an app already running (default: start `python space/app.py` on 127.0.0.1)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=list(PROFILES))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    app, url = None, args.url
    results: dict = {"machine": machine(), "runs": args.runs, "target": TARGET, "profiles": {}}
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            results["chromium"] = b.version
            b.close()
            print(f"CPU: {results['machine']['cpu']}; Chromium {results['chromium']}")
            if "gradio" in args.hosts:
                if url is None:
                    app = launch()
                    url = app.url
                    print(f"app: {url} (log {app.log})")
                wait_ready(url, 600, compressed=True)  # as on a Space up for a minute
                for name in args.profiles:
                    results["profiles"][name] = run_profile(p.chromium, url, name, args.runs,
                                                            SHOT if name == "slow" else None)
            if "static" in args.hosts:
                results["static"] = run_static(p, args.profiles, args.runs)
    finally:
        if app is not None:
            stop(app.proc)
    results["verdicts"] = verdicts(results)
    print_results(results)
    write("first_visit", results, args.out)


if __name__ == "__main__":
    main()

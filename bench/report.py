"""The performance tables, rendered from bench/results/*.json (no number typed by hand).

    python bench/report.py                          # print the Markdown
    python bench/report.py --update-readme FILE     # replace the block between FILE's performance markers

The summary gives each target, the figure a benchmark wrote, whether the target is met and the one command that
produced it; the tables after it hold the figures behind the rows. Tables only: what each benchmark does and what
its figures mean is written in the docs, around the markers. Missing result files are listed as not run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vae_hub.evaluation.report import replace_block

RESULTS = Path(__file__).resolve().parent / "results"
MARK_START, MARK_END = "<!-- performance:start -->", "<!-- performance:end -->"
DATA = "../shared/mnist"  # where MNIST sits next to this checkout; the scripts default to ylecun/mnist

CMD = {
    "train_throughput": f"python bench/train_throughput.py --dataset {DATA}",
    "train_all": f"python bench/train_all.py --dataset {DATA}",
    "inference": "python bench/inference.py",
    "space_latency": "python bench/space_latency.py --load",
    "eval_cost": f"python bench/eval_cost.py --dataset {DATA}",
    "browser_latency": "python bench/browser_latency.py --runtime both",
    "browser_latency_static": "python bench/browser_latency.py --static",
    "first_visit": "python bench/first_visit.py",
}
LOAD_MIX = {"encode": 0.6, "interpolate": 0.2, "compare_betas": 0.2}  # space_latency's load test draws requests so

Row = tuple[str, str, str, bool | None, str]  # what, target, measured, met, command


def load(results: Path = RESULTS) -> dict[str, dict]:
    return {name: json.loads((results / f"{name}.json").read_text())
            for name in CMD if (results / f"{name}.json").is_file()}


def table(title: str, head: list[str], rows: list[list], align: str = "l") -> list[str]:
    """A Markdown table under a bold title; ``align``: l or r per column, the columns past it aligned right."""
    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align.ljust(len(head), "r")) + "|"
    return ["", f"**{title}**", "", "| " + " | ".join(head) + " |", rule,
            *("| " + " | ".join(str(c) for c in r) + " |" for r in rows)]


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**not met**")


def _ms(d: dict) -> str:
    """median / p95 of a latency summary (bench/common.stats), or a dash for none."""
    return f"{d['median_ms']:.0f} / {d['p95_ms']:.0f}" if d.get("n") else "—"


def _f0(x: float | None) -> str:
    return "" if x is None else f"{x:.0f}"


# ---------------------------------------------------------------------------- the summary
def summary_rows(r: dict[str, dict]) -> list[Row]:
    """(what, target, measured, met, command) per line of the summary table."""
    return [*training_rows(r.get("train_throughput")), *train_all_rows(r.get("train_all")),
            *inference_rows(r.get("inference")), *space_rows(r.get("space_latency")),
            *eval_cost_rows(r.get("eval_cost")), *browser_rows(r.get("browser_latency")),
            *browser_rows(r.get("browser_latency_static"), "browser_latency_static", "Static site, "),
            *first_visit_rows(r.get("first_visit"))]


def training_rows(t: dict | None) -> list[Row]:
    if not t:
        return []
    ref, ours, mm, cmd = t["reference"], t["vae_hub"], t["matmul"], CMD["train_throughput"]
    runs = f"median of {t['runs']} runs" if t["runs"] > 1 else "one run"
    measured = (f"{t['ratio']:.2f}× ({ours['images_per_s_median']:,.0f} vs {ref['images_per_s_median']:,.0f} img/s, "
                f"{ours['precision']}); test loss {ours['test_loss']:.2f} vs {ref['test_loss']:.2f}"
                + ("" if t["valid"] else " (not valid: ours above the reference's)"))
    return [(f"Time to quality, vae-z20 vs the pytorch/examples recipe ({runs})",
             "≥ 5× sooner (reference training s / our wall s), test loss at least as good", measured,
             t["ratio"] >= 5 and ours["test_loss"] <= ref["test_loss"], cmd),
            (f"Share of the {mm['dtype']} matmul ceiling at the MLP's shapes", "≥ 60%",
             f"{100 * mm['share_of_ceiling']:.0f}% ({mm['achieved_gflops']:.0f} of {mm['ceiling_gflops']:.0f} GFLOP/s)",
             mm["share_of_ceiling"] >= 0.6, cmd)]


def train_all_rows(a: dict | None) -> list[Row]:
    if not a:
        return []
    target = a["target_minutes"]
    return [("Train every variant, full recipes", f"≤ {target} min",
             f"{a['total_seconds'] / 60:.1f} min for {len(a['variants'])} variants"
             + ("" if a["source"] == "run" else " (recorded training time only)"),
             a["total_seconds"] <= 60 * target, CMD["train_all"]), *_sample_rows(a)]


def _sample_rows(a: dict) -> list[Row]:
    """The prior-sample FDs of the run's sample-judged models against the old set's (train_all's FD_TARGETS)."""
    fds, targets = {n: v["prior_fd"] for n, v in a["variants"].items() if "prior_fd" in v}, a.get("fd_targets", {})
    if not fds:
        return []
    return [("Train every variant: prior-sample FD of the models held to their samples", "≤ the old set's each",
             ", ".join(f"{n} {fd:.1f} (≤ {targets[n]})" for n, fd in fds.items()),
             all(fd <= targets[n] for n, fd in fds.items()), CMD["train_all"])]


def inference_rows(i: dict | None) -> list[Row]:
    if not i:
        return []
    z, conv = i["models"].get("vae-z20", {}), i["models"].get("conv-vae-z20", {})
    rows = [("Inference: encode+decode", "—",
             f"vae-z20 {z.get('batch1', 0):,.0f} / {z.get('batch256', 0):,.0f}; "
             f"conv-vae-z20 {conv.get('batch1', 0):,.0f} / {conv.get('batch256', 0):,.0f} img/s (batch 1 / 256)",
             None, CMD["inference"])]
    if "space_process_peak_mib" in i["memory"]:  # not with --no-space
        rows.append(("Peak memory of the Space's process, started and ready", "—",
                     f"{i['memory']['space_process_peak_mib']:.0f} MiB"
                     + (f" ({first:.0f} MiB on a first start, its disk cache empty)"
                        if (first := i["memory"].get("space_first_start_peak_mib")) else ""), None, CMD["inference"]))
    return rows


def space_rows(s: dict | None) -> list[Row]:
    if not s:
        return []
    rows, cmd = [], CMD["space_latency"]
    enc = {k: v for k, v in s.get("server", {}).get("endpoints", {}).items() if k.startswith("encode[") and "I/O" not in k}
    if enc:
        worst = max(v["median_ms"] for v in enc.values())
        rows.append(("Space: encode, server-side median", "< 50 ms", f"≤ {worst:.1f} ms over {len(enc)} models",
                     worst < 50, cmd))
    if (ld := s.get("load")) and "encode" in ld["latency"]:
        e = ld["latency"]["encode"]
        rows.append((f"Space under load: {ld['clients']} clients × {ld['requests_per_client']} mixed requests",
                     "encode p95 ≤ 250 ms, 0 errors",
                     f"encode p95 {e['p95_ms']:.0f} ms (median {e['median_ms']:.0f}); {ld['errors']} errors; "
                     f"{ld['throughput_rps']:.1f} req/s", e["p95_ms"] <= 250 and ld["errors"] == 0, cmd))
    if s.get("server_peak_rss_mib"):
        rows.append(("Peak memory of the Space's process, end of the load test", "—",
                     f"{s['server_peak_rss_mib']:.0f} MiB", None, cmd))
    return rows


def eval_cost_rows(c: dict | None) -> list[Row]:
    if not c:
        return []
    parts = [f"{n} {v['extrapolated_test_split_seconds'] / 60:.1f} min" for n, v in c.items() if n != "machine"]
    return [("k = 5,000 likelihood over the 10,000 test digits", "—", "; ".join(parts), None, CMD["eval_cost"])]


def _passes(run: dict) -> dict[str, dict]:
    return {m: p for m, p in run.get("passes", {}).items() if "skipped" not in p}


def _server_requests(p: dict) -> int:
    """Requests to the server while drawing: the files fetched (a model's graphs, pictures) are not counted."""
    return p["requests"]["other"] + p["requests"]["page_fallback_requests"]


def browser_rows(b: dict | None, key: str = "browser_latency", host: str = "") -> list[Row]:
    """The pad in headless Chromium, the in-browser runtime: one row per target of the issue; ``host``: a prefix
    for the rows of a host other than the Gradio Space."""
    run = (b or {}).get("runs", {}).get("browser")
    if not run:
        return []
    t, cmd, passes, rows = b["target"], CMD[key], _passes(run), []
    pl = run["page_load"]["ready"]
    if pl.get("n"):
        rows.append(("Draw pad in Chromium: page load → pad ready (localhost, fresh context)", f"≤ {t['page_ready_s']:g} s",
                     f"median {pl['median_ms'] / 1000:.2f} s, slowest {pl['max_ms'] / 1000:.2f} s of {pl['n']} loads",
                     pl["max_ms"] <= 1000 * t["page_ready_s"], cmd))
    if passes:
        rows += _stroke_rows(b, passes, cmd)
    return [(host + label, *rest) for label, *rest in rows]


def _stroke_rows(b: dict, passes: dict[str, dict], cmd: str) -> list[Row]:
    t = b["target"]

    def move_ok(p: dict) -> bool:
        mp = p["move_to_paint"]
        return bool(mp.get("n") and mp["p95_ms"] <= t["move_to_paint_p95_ms"] and p["strokes_without_update"] == 0
                    and p["longest_wait_ms"]["max_ms"] <= t["max_wait_ms"])

    def up_ok(p: dict) -> bool:
        return bool(p["up_to_final"].get("n") and p["up_to_final"]["p95_ms"] <= t["up_to_final_ms"]
                    and p["finals_missing"] == 0)

    moves = "; ".join(f"{m} p95 {p['move_to_paint']['p95_ms']:.0f} ms (median {p['move_to_paint']['median_ms']:.0f}), "
                      f"{p['updates_per_stroke']['median']:.0f} updates per stroke (fewest {p['updates_per_stroke']['min']}), "
                      f"longest wait {p['longest_wait_ms']['max_ms']:.0f} ms"
                      for m, p in passes.items() if p["move_to_paint"].get("n"))
    ups = "; ".join(f"{m} p95 {p['up_to_final']['p95_ms']:.0f} ms (median {p['up_to_final']['median_ms']:.0f})"
                    + (f", {p['finals_missing']} missing" if p["finals_missing"] else "")
                    for m, p in passes.items() if p["up_to_final"].get("n"))
    sent = "; ".join(f"{m} {_server_requests(p)}" + (f" (and {p['requests']['files']} files)" if p["requests"]["files"] else "")
                     for m, p in passes.items()) + f" over {sum(p['strokes'] for p in passes.values())} strokes"
    if (fallback := _passes(b["runs"].get("server", {}))):
        sent += (f" (server fallback: {sum(p['requests']['network'] for p in fallback.values()):,} over "
                 f"{sum(p['strokes'] for p in fallback.values())})")
    return [("Draw pad: pointer-move → painted reconstruction, during strokes",
             f"p95 ≤ {t['move_to_paint_p95_ms']:g} ms, updates throughout the stroke", moves or "no updates during strokes",
             all(move_ok(p) for p in passes.values()), cmd),
            ("Draw pad: mouse-up → final reconstruction", f"≤ {t['up_to_final_ms']:g} ms (p95 over strokes)",
             ups or "no final paints", all(up_ok(p) for p in passes.values()), cmd),
            ("Draw pad: server requests while drawing", f"{t['requests_while_drawing']} with the browser runtime", sent,
             sum(_server_requests(p) for p in passes.values()) <= t["requests_while_drawing"], cmd)]


def _where(p: dict) -> str:
    return f"{p['down_mbit']:g} Mbit/s down, {p['up_mbit']:g} up, {p['rtt_ms']:g} ms"


def _hosts(f: dict | None) -> list[tuple[str, dict]]:
    """(label, profiles) of each host measured: the Gradio Space, then the static site if it was."""
    f = f or {}
    out = [("", f["profiles"])] if f.get("profiles") else []
    if (f.get("static") or {}).get("profiles"):
        out.append(("Static site, ", f["static"]["profiles"]))
    return out


def first_visit_rows(f: dict | None) -> list[Row]:
    """A new visitor over an emulated network: one row per target of issue 22 (medians over the runs), for the
    Gradio Space and, where measured, the static site (issue 24)."""
    rows, cmd = [], CMD["first_visit"]
    for host, profiles in _hosts(f):
        for name, r in profiles.items():
            t, m, w = f["target"].get(name, {}), r["median"], _where(r["profile"])
            ready = f"everything in at {m['browser_ms'] / 1000:.2f} s" if host else \
                f"in-browser runtime from {m['browser_ms'] / 1000:.2f} s"
            if "first_ms" in t:
                rows.append((f"{host}first visit over {w}: first reconstruction after navigation",
                             f"≤ {t['first_ms'] / 1000:g} s",
                             f"{m['first_ms'] / 1000:.2f} s (pad live {m['live_ms'] / 1000:.2f} s; {ready})",
                             m["first_ms"] <= t["first_ms"], cmd))
            if "first_mib" in t:
                rows.append((f"{host}first visit over {w}: bytes on the wire to Draw & encode", f"≤ {t['first_mib']:g} MiB",
                             f"{m['first_mib']:.2f} MiB", m["first_mib"] <= t["first_mib"], cmd))
            if "repeat_ms" in t:
                rows.append((f"{host}repeat visit over {w}: first reconstruction / bytes on the wire",
                             f"≤ {t['repeat_ms'] / 1000:g} s / ≤ {t['repeat_mib']:g} MiB",
                             f"{m['repeat_ms'] / 1000:.2f} s / {m['repeat_mib']:.2f} MiB",
                             m["repeat_ms"] <= t["repeat_ms"] and m["repeat_mib"] <= t["repeat_mib"], cmd))
    return [(what[0].upper() + what[1:], *rest) for what, *rest in rows]


def _machine(v: dict) -> str:
    m = v.get("machine") or {}
    # space_latency.json was written before bench/common.machine: platform's processor and cpus
    desc = f"{m.get('cpu') or m.get('processor')}, {m.get('cores') or m.get('cpus')} cores, torch {m.get('torch')}"
    chromium = m.get("chromium") or v.get("chromium")
    return desc + (f", Chromium {chromium}" if chromium else "")


def sources(r: dict[str, dict]) -> list[str]:
    """Each result: the machine it was measured on and the command that writes it (or that it was not run)."""
    return table("Where each result comes from", ["result", "measured on", "command"],
                 [[f"`{name}.json`", _machine(r[name]) if name in r else "not run yet", f"`{cmd}`"]
                  for name, cmd in CMD.items()], "lll")


# ---------------------------------------------------------------------------- the figures behind the rows
def time_to_quality(t: dict) -> list[str]:
    """Every run of the time-to-quality comparison, and their medians."""
    def row(label: str, ref: dict, ours: dict, floor: float, ratio: float, mm: dict) -> list:
        return [label, f"{ref['train_seconds']:.1f}", f"{ref['train_seconds'] / 5:.1f}", f"{ours['wall_seconds']:.1f}",
                f"{ours['train_seconds']:.1f}", f"{floor:.1f}", f"{ratio:.2f}×",
                f"{ours['test_loss']:.2f} / {ref['test_loss']:.2f}",
                f"{100 * mm['share_of_ceiling']:.0f}% of {mm['ceiling_gflops']:.0f}"]

    ours = t["vae_hub"]
    rows = [row(str(i), r["reference"], r["vae_hub"], r["startup_floor_seconds"], r["ratio"], r["matmul"])
            for i, r in enumerate(t["per_run"], 1)]
    rows.append(row("**median**", t["reference"], ours, t["startup_floor_seconds"], t["ratio"], t["matmul"]))
    return table(f"Time to quality, run by run (reference: {t['reference_epochs']} epochs; vae-z20: {t['epochs']} "
                 f"epochs at batch {ours['batch_size']} in {ours['precision']}; `{CMD['train_throughput']}`)",
                 ["run", "reference training s", "÷ 5", "our wall s", "of it training", "start-up floor s", "ratio",
                  "test loss, ours / reference", f"{t['matmul']['dtype']} matmul: share of GFLOP/s"], rows)


def train_all_table(a: dict) -> list[str]:
    key = "wall_seconds" if a["source"] == "run" else "train_seconds"
    if a["jobs"]:
        threads = max(1, a["machine"]["threads"] // a["jobs"])
        how = f"{a['jobs']} at a time, {threads} thread(s) each"
    else:
        how = f"training times recorded in {a['source']}"
    targets = a.get("fd_targets", {})
    rows = [[name, v["epochs"], v["batch_size"], v["precision"], f"{v[key] / 60:.1f}", f"{v['test_loss']:.2f}",
             f"{v['bundled_test_loss']:.2f}" if "bundled_test_loss" in v else "",
             f"{v['prior_fd']:.2f} (≤ {targets[name]})" if "prior_fd" in v else ""] for name, v in a["variants"].items()]
    rows.append(["**total**", "", "", "", f"**{a['total_seconds'] / 60:.1f}**", "", "", ""])
    return table(f"Every variant's full recipe (`{CMD['train_all']}`; {how})",
                 ["variant", "epochs", "batch", "precision", "minutes", "test loss", "bundled model's test loss when run",
                  "prior-sample FD (old set's)"], rows, "lrrl")


def space_tables(s: dict) -> list[str]:
    server, client = s.get("server", {}).get("endpoints", {}), s.get("client", {})
    out = table(f"Space latency, median / p95 ms (`{CMD['space_latency']}`)",
                ["endpoint", "server-side (the handler)", "through gradio_client, one at a time"],
                [[n, _ms(server[n]) if n in server else "", _ms(client[n]) if n in client else ""]
                 for n in dict.fromkeys([*server, *client])])
    if (ld := s.get("load")):
        cpu = ld["cpu_s"]
        out += table("Space under load", ["clients", "client", "requests each", "wall s", "req/s", "errors",
                                          "app CPU s", "load generator CPU s", "clients ÷ req/s"],
                     [[ld["clients"], ld["client"], ld["requests_per_client"], f"{ld['wall_s']:.0f}",
                       f"{ld['throughput_rps']:.1f}", ld["errors"], cpu["server"], cpu["load_generator"],
                       f"{1000 * ld['clients'] / ld['throughput_rps']:.0f} ms"]], "rl")
        out += _requests_table(ld, s.get("cpu_per_request", {}))
    return out


def _requests_table(ld: dict, cpr: dict) -> list[str]:
    """Per request kind: its latency under load, and the app's CPU and the wall time it takes one at a time."""
    rows = []
    for k in dict.fromkeys([*ld["latency"], *cpr]):
        lat, one = ld["latency"].get(k), cpr.get(k)
        rows.append([k, *((f"{lat['median_ms']:.0f}", f"{lat['p95_ms']:.0f}", lat["n"]) if lat else ("", "", "")),
                     *((f"{one['app_cpu_ms']:.0f}", f"{one['wall_ms']:.0f}") if one else ("", ""))])
    if cpr and all(k in cpr for k in LOAD_MIX):
        mix = sum(w * cpr[k]["app_cpu_ms"] for k, w in LOAD_MIX.items())
        rows.append([" / ".join(f"{100 * w:.0f}% {k}" for k, w in LOAD_MIX.items()), "", "", "", f"{mix:.0f}", ""])
    return table("Space under load, per request", ["request", "median ms", "p95 ms", "n", "app CPU ms, one at a time",
                                                   "wall ms, one at a time"], rows)


def browser_tables(b: dict) -> list[str]:
    """Per runtime and model: the figures behind the browser rows, the fallback beside the browser runtime."""
    runtimes = [[name, f"{pl['median_ms'] / 1000:.2f} s" if (pl := run["page_load"]["ready"]).get("n") else "—",
                 len(run["console"])] for name, run in b["runs"].items()]
    rows = []
    for name, run in b["runs"].items():
        for model, p in _passes(run).items():
            u = p["updates_per_stroke"]
            rows.append([name, model, p["strokes"], f"{u['median']:.0f} ({u['min']})", f"{p['updates_per_s']:.0f}",
                         _ms(p["move_to_paint"]), f"{p['longest_wait_ms'].get('max_ms', 0):.0f}",
                         _f0(p["first_update_ms"]), _f0(p["longest_wait_after_first_stroke_ms"]),
                         _ms(p["up_to_final"]), p["requests"]["network"]])
    return (table(f"Draw pad in headless Chromium (`{CMD['browser_latency']}`)",
                  ["runtime", "page load → pad ready, median", "console errors and warnings"], runtimes)
            + table("Draw pad, per model: ms, median / p95",
                    ["runtime", "model", "strokes", "updates per stroke (fewest)", "updates/s", "pointer-move → painted",
                     "longest wait", "first update of the pass", "longest wait after the first stroke",
                     "mouse-up → final", "requests while drawing"], rows, "ll"))


def first_visit_tables(f: dict) -> list[str]:
    out = []
    for host, profiles in _hosts(f):
        rows = []
        for r in profiles.values():
            w, m, first, rep = _where(r["profile"]), r["median"], r["first"][0], r["repeat"][0]
            rows.append([w, "first", f"{m['live_ms'] / 1000:.2f} s", f"{m['first_ms'] / 1000:.2f} s ({first['first_runtime']})",
                         f"{m['browser_ms'] / 1000:.2f} s", f"{m['first_mib']:.2f}", first["requests"]])
            rows.append([w, "repeat", "", f"{m['repeat_ms'] / 1000:.2f} s ({rep['first_runtime']})", "",
                         f"{m['repeat_mib']:.2f}", f"{rep['requests']} ({rep['from_cache']} from the cache)"])
        site = f["static"]["site"] if host else {}
        what = (f"static site, {site['files']} files, {site['bytes'] / 2**20:.1f} MiB" if host else "Gradio Space")
        out += table(f"First and repeat visit, {what}: medians of {f['runs']} run(s) (`{CMD['first_visit']}`)",
                     ["network", "visit", "pad live", "first reconstruction (runtime)",
                      "in-browser runtime from" if not host else "everything in at", "MiB on the wire", "requests"],
                     rows, "ll")
    return out + _transfers(f)


def _transfers(f: dict) -> list[str]:
    """Where the first visit's bytes go (the first profile's first run) and each other tab's on its first opening."""
    hosts = [(label.rstrip(", ") or "Gradio Space", next(iter(p.values()))) for label, p in _hosts(f)]
    head = [name + " MiB" for name, _ in hosts]
    kinds = dict.fromkeys(k for _, r in hosts for k in r["first"][0]["by_kind"])
    out = table(f"Bytes on the wire, first visit ({_where(hosts[0][1]['profile'])})", ["what", *head],
                [[k, *(f"{r['first'][0]['by_kind'][k]:.2f}" if k in r["first"][0]["by_kind"] else "" for _, r in hosts)]
                 for k in kinds] + [["**all**", *(f"{r['first'][0]['mib']:.2f}" for _, r in hosts)]])
    name, r = hosts[0]
    out += table(f"Largest transfers, first visit, {name}", ["file", "MiB"],
                 [[x["what"], f"{x['kib'] / 1024:.2f}"] for x in r["first"][0]["largest"][:7]])
    tabs = dict.fromkeys(t for _, r in hosts for t in r.get("tabs", {}))
    if tabs:
        out += table("Each other tab's first opening, after Draw & encode", ["tab", *head],
                     [[t, *(f"{r['tabs'][t]['mib']:.2f}" if t in r.get("tabs", {}) else "" for _, r in hosts)]
                      for t in tabs])
    return out


# ---------------------------------------------------------------------------- the block
def render(r: dict[str, dict]) -> str:
    lines = ["<!-- generated by python bench/report.py from bench/results/*.json: edit those, not this block -->",
             "| what | target | measured | | command |", "|---|---|---|---|---|"]
    for what, target, measured, ok, cmd in summary_rows(r):
        lines.append(f"| {what} | {target} | {measured} | {_verdict(ok)} | `{cmd}` |")
    lines += sources(r)
    if (t := r.get("train_throughput")):
        lines += time_to_quality(t)
    if (a := r.get("train_all")):
        lines += train_all_table(a)
    if (s := r.get("space_latency")):
        lines += space_tables(s)
    if (b := r.get("browser_latency")) and b.get("runs"):
        lines += browser_tables(b)
    if (f := r.get("first_visit")) and f.get("profiles"):
        lines += first_visit_tables(f)
    return "\n".join(lines)


def update_readme(path: Path, block: str) -> None:
    replace_block(path, block, MARK_START, MARK_END)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--update-readme", type=Path, metavar="FILE",
                   help="a Markdown file with the performance markers (the README, docs/performance.md)")
    args = p.parse_args(argv)
    block = render(load(args.results))
    print(block)
    if args.update_readme:
        update_readme(args.update_readme, block)
        print(f"updated {args.update_readme}")


if __name__ == "__main__":
    main()

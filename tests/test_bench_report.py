"""The Performance section is rendered from benchmark JSON: verdicts follow the figures, markers are respected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import bench_module

ROOT = Path(__file__).resolve().parent.parent


def _report():
    return bench_module("report")


def _run(ratio: float, ours_loss: float, share: float) -> dict:
    """One run of bench/train_throughput.py: the reference trains 100 s, ours takes 100 / ratio s wall."""
    return {"startup_floor_seconds": 3.0,
            "reference": {"train_seconds": 100.0, "test_loss": 105.5, "images_per_s": 10_000.0},
            "vae_hub": {"wall_seconds": 100.0 / ratio, "train_seconds": 80.0 / ratio, "test_loss": ours_loss,
                        "epochs": 10, "batch_size": 256, "precision": "bf16", "images_per_s": 10_000.0 * ratio},
            "ratio": ratio, "valid": ours_loss <= 105.5,
            "matmul": {"dtype": "float32", "flops_per_image": 3.28e6, "ceiling_gflops": 150.0,
                       "achieved_gflops": 150.0 * share, "share_of_ceiling": share}}


def _throughput(ratio: float, ours_loss: float, share: float, per_run: tuple[float, ...] = ()) -> dict:
    """A train_throughput.json: the medians are those of a run at ``ratio``; ``per_run``: the runs' ratios."""
    med = _run(ratio, ours_loss, share)
    runs = [_run(x, ours_loss, share) for x in per_run or (ratio,)]
    return {"machine": {"cpu": "test cpu", "cores": 2, "torch": "x"}, "runs": len(runs), "reference_epochs": 10,
            "epochs": 10, **med, "reference": {**med["reference"], "images_per_s_median": 10_000.0},
            "vae_hub": {**med["vae_hub"], "images_per_s_median": 10_000.0 * ratio},
            "ratio_per_run": [r["ratio"] for r in runs], "per_run": runs}


def _row(rows, start: str):
    return next(r for r in rows if r[0].startswith(start))


def test_verdicts_follow_the_figures():
    rep = _report()
    fast = rep.summary_rows({"train_throughput": _throughput(5.2, 105.0, 0.61)})
    assert _row(fast, "Time to quality")[3] is True
    assert _row(fast, "Share of the float32")[3] is True
    # faster but worse test loss: not met; and below 60% of the ceiling: not met
    worse = rep.summary_rows({"train_throughput": _throughput(6.0, 106.0, 0.59)})
    assert _row(worse, "Time to quality")[3] is False
    assert "(not valid: ours above the reference's)" in _row(worse, "Time to quality")[2]
    assert _row(worse, "Share of the float32")[3] is False


def test_time_to_quality_table_has_every_run_and_the_median():
    text = _report().render({"train_throughput": _throughput(5.2, 105.0, 0.7, per_run=(5.3, 4.0, 5.2))})
    assert "10 epochs at batch 256 in bf16" in text
    # run 2: the reference's 100 s, a fifth of it, our 25 s wall (20 s training), the floor, the ratio
    assert "| 2 | 100.0 | 20.0 | 25.0 | 20.0 | 3.0 | 4.00× | 105.00 / 105.50 | 70% of 150 |" in text
    assert "| **median** | 100.0 | 20.0 | 19.2 | 15.4 | 3.0 | 5.20× |" in text


def test_train_all_row_and_table():
    rep = _report()
    a = {"machine": {"cpu": "c", "cores": 2, "torch": "x", "threads": 2}, "source": "run", "total_seconds": 1250.0,
         "target_minutes": 20, "jobs": 2,
         "variants": {"vae-z20": {"wall_seconds": 1250.0, "train_seconds": 1000.0, "epochs": 10, "test_loss": 105.4,
                                  "batch_size": 256, "precision": "bf16"}}}
    assert _row(rep.summary_rows({"train_all": a}), "Train every variant")[1:4] == ("≤ 20 min", "20.8 min for 1 variants",
                                                                                   False)
    a["total_seconds"] = 1150.0
    assert _row(rep.summary_rows({"train_all": a}), "Train every variant")[3] is True
    text = rep.render({"train_all": a})
    assert "2 at a time, 1 thread(s) each" in text and "| vae-z20 | 10 | 256 | bf16 | 20.8 | 105.40 |  |  |" in text
    assert not [r for r in rep.summary_rows({"train_all": a}) if "prior-sample FD" in r[0]]  # none measured: no row
    a["fd_targets"] = {"vae-z20": 66.8}
    for fd, met in ((66.8, True), (66.9, False)):  # the samples of the run against the old set's
        a["variants"]["vae-z20"]["prior_fd"] = fd
        assert _row(rep.summary_rows({"train_all": a}), "Train every variant: prior-sample FD")[2:4] == \
            (f"vae-z20 {fd:.1f} (≤ 66.8)", met)
    assert "| 20.8 | 105.40 |  | 66.90 (≤ 66.8) |" in rep.render({"train_all": a})
    del a["variants"]["vae-z20"]["prior_fd"]
    history = a | {"source": "pretrained", "jobs": None}  # the times recorded by training runs: their training time
    assert "(recorded training time only)" in _row(rep.summary_rows({"train_all": history}), "Train every variant")[2]
    assert "| vae-z20 | 10 | 256 | bf16 | 16.7 |" in rep.render({"train_all": history})


def _space(p95: float = 240, errors: int = 0) -> dict:
    cpr = {k: {"app_cpu_ms": v, "wall_ms": v + 1, "n": 3} for k, v in
           {"status": 10.0, "encode": 50.0, "interpolate": 60.0, "compare_betas": 80.0}.items()}
    load = {"clients": 16, "client": "http", "requests_per_client": 20, "wall_s": 20.0, "throughput_rps": 16.0,
            "errors": errors, "cpu_s": {"server": 30.0, "load_generator": 2.0},
            "latency": {"encode": {"n": 5, "median_ms": 100, "p95_ms": p95},
                        "interpolate": {"n": 2, "median_ms": 1500, "p95_ms": 2000}}}
    return {"machine": {"cpu": "c", "cores": 2, "torch": "x"}, "load": load, "cpu_per_request": cpr}


def test_the_load_row_follows_the_figures():
    rep = _report()
    assert _row(rep.summary_rows({"space_latency": _space()}), "Space under load")[3] is True
    assert _row(rep.summary_rows({"space_latency": _space(p95=260)}), "Space under load")[3] is False
    assert _row(rep.summary_rows({"space_latency": _space(errors=1)}), "Space under load")[3] is False


def test_the_load_tables_give_the_cost_of_each_request():
    text = _report().render({"space_latency": _space()})
    # 16 clients / 16 req/s: a request spends 1000 ms in the app on average (Little's law)
    assert "| 16 | http | 20 | 20 | 16.0 | 0 | 30.0 | 2.0 | 1000 ms |" in text
    assert "| encode | 100 | 240 | 5 | 50 | 51 |" in text and "| status |  |  |  | 10 | 11 |" in text
    # over the load test's mix: 0.6 * 50 + 0.2 * 60 + 0.2 * 80 = 58 ms of the app's CPU per request
    assert "| 60% encode / 20% interpolate / 20% compare_betas |  |  |  | 58 |  |" in text


def test_every_result_is_listed_with_its_machine_or_as_not_run():
    text = _report().render({"space_latency": _space()})
    assert "| `space_latency.json` | c, 2 cores, torch x | `python bench/space_latency.py --load` |" in text
    assert "| `inference.json` | not run yet | `python bench/inference.py` |" in text


def test_update_readme_replaces_only_the_block(tmp_path):
    rep = _report()
    res = tmp_path / "results"
    res.mkdir()
    (res / "train_throughput.json").write_text(json.dumps(_throughput(2.0, 105.0, 0.5)))
    page = tmp_path / "docs" / "performance.md"  # any Markdown file with the markers
    page.parent.mkdir()
    page.write_text(f"# x\nbefore\n{rep.MARK_START}\nold\n{rep.MARK_END}\nafter\n")
    rep.main(["--results", str(res), "--update-readme", str(page)])
    text = page.read_text()
    assert "old" not in text and text.startswith("# x\nbefore\n") and text.endswith("after\n")
    assert "2.00×" in text and "**not met**" in text
    page.write_text("no markers here\n")
    with pytest.raises(ValueError, match="markers"):
        rep.main(["--results", str(res), "--update-readme", str(page)])


def test_the_block_is_tables_only():
    """Prose lives in the docs around the block: every line is a table row, a bold title, blank or a comment."""
    rep = _report()
    text = rep.render({"train_throughput": _throughput(4.0, 106.0, 0.5, per_run=(4.0, 3.0)), "space_latency": _space(900),
                       "browser_latency": _browser(), "first_visit": _first_visit(1, 1, 1, 1, 1)})
    for line in text.splitlines():
        assert not line or line.startswith(("|", "**", "<!--")), line


def _browser_pass(model: str, p95: float = 30.0, up_p95: float = 20.0, wait: float = 40.0, without: int = 0,
                  network: int = 0, fallback: int = 0) -> dict:
    lat = lambda med, p: {"n": 200, "median_ms": med, "p95_ms": p, "min_ms": 1.0, "max_ms": p + 5}  # noqa: E731
    return {"model": model, "repeats": 2, "strokes": 22, "updates_per_stroke": {"median": 40, "min": 12, "max": 90},
            "updates_per_s": 30.0, "strokes_without_update": without, "longest_wait_ms": lat(25.0, wait) | {"max_ms": wait},
            "move_to_paint": lat(p95 / 2, p95), "up_to_final": lat(up_p95 / 2, up_p95), "finals_missing": 0,
            "first_update_ms": 35.0, "longest_wait_after_first_stroke_ms": 30.0,
            "requests": {"network": network, "files": 0, "other": network, "page_fallback_requests": fallback, "samples": []}}


def _browser(ready_max_ms: float = 1500.0, **kw) -> dict:
    ready = {"n": 5, "median_ms": ready_max_ms - 100, "p95_ms": ready_max_ms, "min_ms": 900.0, "max_ms": ready_max_ms}
    run = lambda name, **k: {"runtime": name, "page_load": {"ready": ready},  # noqa: E731
                             "passes": {m: _browser_pass(m, **k) for m in ("vae-z20", "conv-vae-z20")}, "console": []}
    return {"machine": {"cpu": "test cpu", "cores": 2, "torch": "x", "chromium": "1.2.3"},
            "target": {"move_to_paint_p95_ms": 50.0, "max_wait_ms": 100.0, "up_to_final_ms": 50.0, "page_ready_s": 3.0,
                       "requests_while_drawing": 0},
            "runs": {"browser": run("browser", **kw), "server": run("server", p95=140.0, network=300, fallback=300)}}


def test_browser_rows_follow_the_figures():
    rep = _report()
    rows = rep.summary_rows({"browser_latency": _browser()})
    for start in ("Draw pad in Chromium: page load", "Draw pad: pointer-move", "Draw pad: mouse-up", "Draw pad: server requests"):
        assert _row(rows, start)[3] is True, start
    # the fallback's figures are for comparison only: its 140 ms and 300 requests do not decide a verdict
    assert _row(rows, "Draw pad: server requests")[2] == \
        "vae-z20 0; conv-vae-z20 0 over 44 strokes (server fallback: 600 over 44)"
    assert _row(rep.summary_rows({"browser_latency": _browser(ready_max_ms=3100)}), "Draw pad in Chromium")[3] is False
    for kw in ({"p95": 51.0}, {"wait": 120.0}, {"without": 1}):  # slow, or no updates during part of a stroke
        assert _row(rep.summary_rows({"browser_latency": _browser(**kw)}), "Draw pad: pointer-move")[3] is False, kw
    assert _row(rep.summary_rows({"browser_latency": _browser(up_p95=55.0)}), "Draw pad: mouse-up")[3] is False
    for kw in ({"network": 1}, {"fallback": 1}):
        assert _row(rep.summary_rows({"browser_latency": _browser(**kw)}), "Draw pad: server requests")[3] is False, kw
    # files (a model's graphs on its first stroke, the neighbours' pictures) are not server requests
    files = _browser()
    files["runs"]["browser"]["passes"]["conv-vae-z20"]["requests"].update(network=3, files=3, other=0)
    row = _row(rep.summary_rows({"browser_latency": files}), "Draw pad: server requests")
    assert row[3] is True and "conv-vae-z20 0 (and 3 files)" in row[2]
    # the static site's rows carry its name
    assert _row(rep.summary_rows({"browser_latency_static": _browser()}), "Static site, Draw pad: pointer-move")[3] is True
    # only the fallback measured: no browser rows, the details table still shows it
    only_server = _browser()
    del only_server["runs"]["browser"]
    assert not [r for r in rep.summary_rows({"browser_latency": only_server}) if r[0].startswith("Draw pad")]
    assert "| server | vae-z20 | 22 |" in rep.render({"browser_latency": only_server})


def test_browser_tables():
    rep = _report()
    text = rep.render({"browser_latency": _browser()})
    assert "| `browser_latency.json` | test cpu, 2 cores, torch x, Chromium 1.2.3 |" in text
    assert "| browser | 1.40 s | 0 |" in text  # page load -> pad ready, console messages
    assert "| browser | vae-z20 | 22 | 40 (12) | 30 | 15 / 30 | 40 | 35 | 30 | 10 / 20 | 0 |" in text
    assert "| server | conv-vae-z20 | 22 | 40 (12) | 30 | 70 / 140 | 40 | 35 | 30 | 10 / 20 | 300 |" in text
    # a slow first update after switching model (its graphs load on the first stroke), and the waits after it
    slow = _browser(wait=175.0)
    slow["runs"]["browser"]["passes"]["conv-vae-z20"].update(first_update_ms=175.0, longest_wait_after_first_stroke_ms=31.0)
    assert "| browser | conv-vae-z20 | 22 | 40 (12) | 30 | 15 / 30 | 175 | 175 | 31 |" in rep.render({"browser_latency": slow})


def _browser_bench():
    return bench_module("browser_latency")


def test_browser_analysis_of_a_synthetic_timeline():
    """Two strokes, as the page records them: paint latencies, updates per stroke, waits and the final paint."""
    bl = _browser_bench()
    paints = [  # stroke 1: down at 0, moves at 10, 20, 30, 40, up at 50
        {"t_event": 0, "t_painted": 12, "in_stroke": True},
        {"t_event": 10, "t_painted": 30, "in_stroke": True},   # shows the moves at 10 and 20
        {"t_event": 30, "t_painted": 45, "in_stroke": True},
        {"t_event": 40, "t_painted": 60, "in_stroke": False},  # the final paint: 10 ms after the up
        # stroke 2: down at 100, one move at 105, up at 200 (the input paused: that is not a wait)
        {"t_event": 100, "t_painted": 110, "in_stroke": True},
        {"t_event": 200, "t_painted": 280, "in_stroke": False},  # 80 ms after the up
    ]
    moves = [[10, 10, 1], [20, 20, 1], [30, 25, 2], [40, 40, 1], [105, 105, 1]]
    a = bl.analyse(paints, downs=[0, 100], ups=[50, 200], moves=moves)
    assert a["strokes"] == 2 and a["in_stroke_updates"] == 4 and a["strokes_without_update"] == 0
    assert a["updates_per_stroke"] == {"median": 2.0, "min": 1, "max": 3}
    assert [r["moves"] for r in a["per_stroke"]] == [4, 1]
    assert a["move_to_paint"]["n"] == 4 and a["move_to_paint"]["max_ms"] == 20 and a["move_to_paint"]["median_ms"] == 13.5
    assert a["move_to_paint_from_oldest_sample"]["max_ms"] == 20  # the merged move at 30 had a sample at 25: 45 - 25
    assert a["up_to_final"]["median_ms"] == 45 and a["finals_missing"] == 0
    # waits: stroke 1: 12, 30-12=18, 45-30=15, final 60-45=15 -> 18; stroke 2: 10, final 280-200=80 -> 80
    assert [r["longest_wait_ms"] for r in a["per_stroke"]] == [18, 80]
    assert a["coalesced_moves"] == 1 and a["move_samples"] == 6
    # a stroke whose final paint never came
    b = bl.analyse(paints[:3], downs=[0], ups=[50], moves=moves[:4])
    assert b["finals_missing"] == 1 and b["up_to_final"] == {"n": 0}


def _first_visit(first_ms: float, mib: float, repeat_ms: float, repeat_mib: float, slow_ms: float) -> dict:
    visit = {"requests": 140, "from_cache": 0, "first_runtime": "server", "mib": 4.0, "largest": [], "by_kind": {}}
    prof = lambda down, up, rtt, med: {"profile": {"down_mbit": down, "up_mbit": up, "rtt_ms": rtt},  # noqa: E731
                                        "median": med, "first": [visit], "repeat": [visit], "tabs": {}}
    return {"runs": 1, "chromium": "x", "target": {"fast": {"first_ms": 3000, "first_mib": 5.0, "repeat_ms": 1500,
                                                            "repeat_mib": 0.5}, "slow": {"first_ms": 8000}},
            "profiles": {"fast": prof(20, 5, 40, {"first_ms": first_ms, "first_mib": mib, "live_ms": 1800,
                                                  "browser_ms": 4500, "repeat_ms": repeat_ms, "repeat_mib": repeat_mib}),
                         "slow": prof(5, 1, 150, {"first_ms": slow_ms, "first_mib": mib, "live_ms": 4000,
                                                  "browser_ms": 12000, "repeat_ms": 2000, "repeat_mib": 0.03})}}


def test_first_visit_rows_follow_the_figures():
    rep = _report()
    rows = rep.summary_rows({"first_visit": _first_visit(2500, 4.9, 1400, 0.1, 7000)})
    assert [r[3] for r in rows] == [True, True, True, True]
    rows = rep.summary_rows({"first_visit": _first_visit(3100, 5.2, 1600, 0.1, 8100)})
    assert [r[3] for r in rows] == [False, False, False, False]
    assert "5.20 MiB" in _row(rows, "First visit over 20 Mbit/s down, 5 up, 40 ms: bytes")[2]
    assert "| 5 Mbit/s down, 1 up, 150 ms | first |" in rep.render({"first_visit": _first_visit(1, 1, 1, 1, 1)})


def test_the_static_site_gets_its_own_rows_and_table():
    rep = _report()
    f = _first_visit(2500, 4.9, 1400, 0.1, 7000)
    f["static"] = {"site": {"files": 61, "bytes": 30 * 2**20},
                   "profiles": _first_visit(4800, 6.5, 1600, 0.0, 11500)["profiles"]}
    rows = rep.summary_rows({"first_visit": f})
    assert [r[3] for r in rows] == [True] * 4 + [False] * 4  # each host judged on its own figures
    assert "6.50 MiB" in _row(rows, "Static site, first visit over 20 Mbit/s down, 5 up, 40 ms: bytes")[2]
    assert "**First and repeat visit, static site, 61 files, 30.0 MiB: medians of 1 run(s)" in rep.render({"first_visit": f})


def test_where_the_first_visits_bytes_go():
    f = _first_visit(2500, 4.9, 1400, 0.1, 7000)
    first = f["profiles"]["fast"]["first"][0] = dict(f["profiles"]["fast"]["first"][0], mib=4.9)
    first.update(by_kind={"ONNX graphs": 2.0, "our modules": 0.1},
                 largest=[{"kib": 2048.0, "url": "/x/encoder.onnx", "what": "vae-z20 encoder"}])
    f["profiles"]["fast"]["tabs"] = {"Generate": {"mib": 0.05, "requests": 3}}
    text = _report().render({"first_visit": f})
    assert "| ONNX graphs | 2.00 |" in text and "| **all** | 4.90 |" in text
    assert "| vae-z20 encoder | 2.00 |" in text and "| Generate | 0.05 |" in text

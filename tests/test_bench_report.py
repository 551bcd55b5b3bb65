"""The Performance section is rendered from benchmark JSON: verdicts follow the figures, markers are respected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import bench_module

ROOT = Path(__file__).resolve().parent.parent


def _report():
    return bench_module("report")


def _throughput(ratio: float, ours_loss: float, share: float) -> dict:
    ref = 10_000.0
    return {"machine": {"cpu": "test cpu", "cores": 2, "torch": "x"}, "epochs": 10,
            "reference": {"images_per_s_median": ref, "test_loss": 105.5, "train_seconds": 100.0},
            "vae_hub": {"images_per_s_median": ref * ratio, "test_loss": ours_loss, "wall_seconds": 100.0 / ratio,
                        "train_seconds": 80.0 / ratio, "batch_size": 256, "precision": "bf16"},
            "ratio": ratio, "valid": ours_loss <= 105.5,
            "matmul": {"flops_per_image": 3.28e6, "ceiling_gflops": 150.0, "achieved_gflops": 150.0 * share,
                       "share_of_ceiling": share}}


def _row(rows, start: str):
    return next(r for r in rows if r[0].startswith(start))


def test_an_older_images_per_second_result_is_not_called_time_to_quality():
    old = _throughput(2.3, 105.0, 0.5)
    del old["valid"]
    rows = _report().summary_rows({"train_throughput": old})
    assert _row(rows, "Training throughput")[1].startswith("≥ 5× images/s")
    assert not any(r[0].startswith("Time to quality") for r in rows)


def test_verdicts_follow_the_figures():
    rep = _report()
    fast = rep.summary_rows({"train_throughput": _throughput(5.2, 105.0, 0.61)})
    assert _row(fast, "Time to quality")[3] is True
    assert _row(fast, "Share of the float32")[3] is True
    # faster but worse test loss: not met; and below 60% of the ceiling: not met
    worse = rep.summary_rows({"train_throughput": _throughput(6.0, 106.0, 0.59)})
    assert _row(worse, "Time to quality")[3] is False
    assert _row(worse, "Share of the float32")[3] is False


def test_why_not_paragraph_computes_the_bound():
    rep = _report()
    old = _throughput(2.4, 105.0, 0.57)
    del old["valid"]  # an images/s result: the bound is on matmul throughput
    text = rep.render({"train_throughput": old})
    # 5 x 10,000 img/s x 3.28 MFLOP = 164 GFLOP/s, above the 150 GFLOP/s ceiling
    assert "50,000 images/s" in text and "164 GFLOP/s" in text and "no trainer can reach it" in text
    # time to quality: 5x sooner than 100 s of reference training is a 20 s run; ours took 100 / 2.4 = 42 s
    text = rep.render({"train_throughput": _throughput(2.4, 105.0, 0.57)})
    assert "trained for 100 s" in text and "whole run in 20 s" in text and "took 42 s wall (33 s of it training" in text
    assert "10 epochs at batch 256 in bf16" in text and "already takes" not in text  # no floor measured
    t = _throughput(2.4, 105.0, 0.57) | {"startup_floor_seconds": 3.0}
    assert "already takes 3.0 s from launch to exit on this machine, leaving 17 s" in rep.render({"train_throughput": t})
    text = rep.render({"train_throughput": _throughput(6.0, 106.0, 0.57)})  # fast, but not as good
    assert "Why not 5×" in text and "test loss stayed above the reference's" in text
    assert "Why not 5×" not in rep.render({"train_throughput": _throughput(5.5, 105.0, 0.7)})


def test_load_and_train_all_rows():
    rep = _report()
    results = {
        "space_latency": {"load": {"clients": 16, "requests_per_client": 20, "wall_s": 10.0, "throughput_rps": 20.0,
                                   "errors": 0, "latency": {"encode": {"median_ms": 100, "p95_ms": 240, "n": 5}}}},
        "train_all": {"source": "run", "total_seconds": 3700.0,
                      "variants": {"vae-z20": {"wall_seconds": 3700.0, "epochs": 10, "test_loss": 105.4}}},
    }
    rows = rep.summary_rows(results)
    assert _row(rows, "Space under load")[3] is True
    assert _row(rows, "Train every variant")[3] is False  # 61.7 min > 60 (a result from before the 20-min target)
    results["train_all"].update(total_seconds=1250.0, target_minutes=20)
    assert _row(rep.summary_rows(results), "Train every variant")[1:4:2] == ("≤ 20 min", False)  # 20.8 min
    results["train_all"]["total_seconds"] = 1150.0
    assert _row(rep.summary_rows(results), "Train every variant")[3] is True
    results["space_latency"]["load"]["errors"] = 1
    assert _row(rep.summary_rows(results), "Space under load")[3] is False
    text = rep.render(results)
    assert "Not run yet" in text and "bench/inference.py" in text
    results["train_all"].update(jobs=2, machine={"threads": 2})
    text = rep.render(results)
    assert "`train.py --jobs 2` process trains them all, 2 variants at a time with 1 thread(s) each" in text


def test_update_readme_replaces_only_the_block(tmp_path):
    rep = _report()
    res = tmp_path / "results"
    res.mkdir()
    (res / "train_throughput.json").write_text(json.dumps(_throughput(2.0, 105.0, 0.5)))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\nbefore\n{rep.MARK_START}\nold\n{rep.MARK_END}\nafter\n")
    rep.main(["--results", str(res), "--update-readme", str(readme)])
    text = readme.read_text()
    assert "old" not in text and text.startswith("# x\nbefore\n") and text.endswith("after\n")
    assert "2.00×" in text and "**not met**" in text
    readme.write_text("no markers here\n")
    with pytest.raises(ValueError, match="markers"):
        rep.main(["--results", str(res), "--update-readme", str(readme)])


def test_load_explanation_uses_the_runs_figures():
    rep = _report()
    cpr = {k: {"app_cpu_ms": v, "wall_ms": v, "n": 3} for k, v in
           {"status": 10.0, "encode": 50.0, "interpolate": 60.0, "compare_betas": 80.0}.items()}
    load = {"clients": 16, "requests_per_client": 20, "wall_s": 20.0, "throughput_rps": 16.0, "errors": 0,
            "latency": {"encode": {"median_ms": 300, "p95_ms": 900, "n": 5},
                        "interpolate": {"median_ms": 1500, "p95_ms": 2000, "n": 2}}}
    text = rep.render({"space_latency": {"load": load, "cpu_per_request": cpr}})
    # 0.6*50 + 0.2*60 + 0.2*80 = 58 ms per request; 16 / 16 req/s = 1000 ms
    assert "Why not 250 ms" in text and "58 ms per request" in text and "= 1000 ms" in text
    load["latency"]["encode"]["p95_ms"] = 240
    assert "Why not 250 ms" not in rep.render({"space_latency": {"load": load, "cpu_per_request": cpr}})


def _browser_pass(model: str, p95: float = 30.0, up_p95: float = 20.0, wait: float = 40.0, without: int = 0,
                  network: int = 0, fallback: int = 0) -> dict:
    lat = lambda med, p: {"n": 200, "median_ms": med, "p95_ms": p, "min_ms": 1.0, "max_ms": p + 5}  # noqa: E731
    return {"model": model, "repeats": 2, "strokes": 22, "updates_per_stroke": {"median": 40, "min": 12, "max": 90},
            "updates_per_s": 30.0, "strokes_without_update": without, "longest_wait_ms": lat(25.0, wait) | {"max_ms": wait},
            "move_to_paint": lat(p95 / 2, p95), "up_to_final": lat(up_p95 / 2, up_p95), "finals_missing": 0,
            "requests": {"network": network, "files": 0, "other": network, "page_fallback_requests": fallback, "samples": []}}


def _browser(ready_max_ms: float = 1500.0, **kw) -> dict:
    ready = {"n": 5, "median_ms": ready_max_ms - 100, "p95_ms": ready_max_ms, "min_ms": 900.0, "max_ms": ready_max_ms}
    run = lambda name, **k: {"runtime": name, "page_load": {"ready": ready},  # noqa: E731
                             "passes": {m: _browser_pass(m, **k) for m in ("vae-z20", "conv-vae-z20")}, "console": []}
    return {"machine": {"cpu": "test cpu", "cores": 2, "chromium": "1.2.3"},
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
    assert row[3] is True and "conv-vae-z20 0 (and 3 files: a model fetched on its first stroke" in row[2]
    # the static site's rows carry its name
    assert _row(rep.summary_rows({"browser_latency_static": _browser()}), "Static site, Draw pad: pointer-move")[3] is True
    # only the fallback measured: no browser rows, the details table still shows it
    only_server = _browser()
    del only_server["runs"]["browser"]
    assert not [r for r in rep.summary_rows({"browser_latency": only_server}) if r[0].startswith("Draw pad")]
    assert "| server | vae-z20 | 22 |" in rep.render({"browser_latency": only_server})


def test_browser_details_table():
    rep = _report()
    text = rep.render({"browser_latency": _browser()})
    assert "Chromium 1.2.3" in text and "drawn twice per model" in text
    assert "| browser | vae-z20 | 22 | 40 (12) | 30 | 15 / 30 | 40 | 10 / 20 | 0 | 1.40 s |" in text
    assert "| server | conv-vae-z20 | 22 | 40 (12) | 30 | 70 / 140 | 40 | 10 / 20 | 300 |  |" in text
    assert "**Why" not in text
    # a slow first stroke after switching model (the graphs load then) is explained from the figures
    slow = _browser(wait=175.0)
    slow["runs"]["browser"]["passes"]["conv-vae-z20"].update(first_update_ms=175.0, longest_wait_after_first_stroke_ms=31.0)
    slow["runs"]["browser"]["passes"]["conv-vae-z20"]["requests"].update(network=3, files=3)
    text2 = rep.render({"browser_latency": slow})
    assert "**Why conv-vae-z20's longest wait is 175 ms.**" in text2 and "(the 3 requests while drawing)" in text2
    assert "no stroke waited longer than 31 ms" in text2 and "Why vae-z20's" not in text2
    not_run = next(line for line in text.splitlines() if line.startswith("Not run yet"))
    assert "browser_latency.py --runtime both" not in not_run
    assert "browser_latency.py --runtime both" in rep.render({}).split("Not run yet")[1]


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


def test_the_run_by_run_spread_is_shown_even_when_the_median_meets_the_target():
    rep = _report()
    t = {**_throughput(5.2, 105.0, 0.7), "ratio_per_run": [5.3, 4.6, 5.2]}
    text = rep.render({"train_throughput": t})
    assert "Why not 5×" not in text and "5.30×, 4.60×, 5.20× (1 of 3 below 5×)" in text
    assert "Run by run" not in rep.render({"train_throughput": _throughput(5.2, 105.0, 0.7)})


def _first_visit(first_ms: float, mib: float, repeat_ms: float, repeat_mib: float, slow_ms: float) -> dict:
    visit = {"requests": 140, "from_cache": 0, "first_runtime": "server", "largest": [], "by_kind": {}}
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
    assert "The same visits to the static site (`python -m vae_space.static`: 61 files, 30.0 MiB" in rep.render(
        {"first_visit": f})

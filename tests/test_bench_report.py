"""The Performance section is rendered from benchmark JSON: verdicts follow the figures, markers are respected."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _report():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _throughput(ratio: float, ours_loss: float, share: float) -> dict:
    ref = 10_000.0
    return {"machine": {"cpu": "test cpu", "cores": 2, "torch": "x"}, "epochs": 10,
            "reference": {"images_per_s_median": ref, "test_loss": 105.5},
            "vae_hub": {"images_per_s_median": ref * ratio, "test_loss": ours_loss}, "ratio": ratio,
            "matmul": {"flops_per_image": 3.28e6, "ceiling_gflops": 150.0, "achieved_gflops": 150.0 * share,
                       "share_of_ceiling": share}}


def _row(rows, start: str):
    return next(r for r in rows if r[0].startswith(start))


def test_verdicts_follow_the_figures():
    rep = _report()
    fast = rep.summary_rows({"train_throughput": _throughput(5.2, 105.0, 0.61)})
    assert _row(fast, "Training throughput")[3] is True
    assert _row(fast, "Share of the float32")[3] is True
    # faster but worse test loss: not met; and below 60% of the ceiling: not met
    worse = rep.summary_rows({"train_throughput": _throughput(6.0, 106.0, 0.59)})
    assert _row(worse, "Training throughput")[3] is False
    assert _row(worse, "Share of the float32")[3] is False


def test_why_not_paragraph_computes_the_bound():
    rep = _report()
    text = rep.render({"train_throughput": _throughput(2.4, 105.0, 0.57)})
    # 5 x 10,000 img/s x 3.28 MFLOP = 164 GFLOP/s, above the 150 GFLOP/s ceiling
    assert "50,000 images/s" in text and "164 GFLOP/s" in text and "no trainer can reach it" in text
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
    assert _row(rows, "Train every variant")[3] is False  # 61.7 min
    results["space_latency"]["load"]["errors"] = 1
    assert _row(rep.summary_rows(results), "Space under load")[3] is False
    text = rep.render(results)
    assert "Not run yet" in text and "bench/inference.py" in text


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

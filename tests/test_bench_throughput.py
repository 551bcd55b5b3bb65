"""The time-to-quality benchmark: the matmul ceiling at the step's shapes, and a smoke run end to end on the mini
data that reports every field. (No timing is checked here: timings live in the benchmark's own runs.)"""

import json
import subprocess
import sys

import torch

import vae_hub

from .conftest import MINI, ROOT, bench_module


def test_step_shapes_follow_the_model():
    tt = bench_module("train_throughput")
    model = vae_hub.build("vae-z20")
    assert tt.linear_layers(model) == list(tt.MLP_LAYERS)
    shapes = tt.step_shapes(tt.linear_layers(model), 128)
    assert len(shapes) == 3 * 4 - 1  # no input gradient for the first layer
    assert shapes[:3] == [(128, 784, 400), (784, 128, 400), (128, 400, 40)]


def test_the_matmul_ceiling_is_measured():
    tt = bench_module("train_throughput")
    assert tt.gemm_ceiling(tt.step_shapes([(64, 32)], 16), torch.float32, rounds=1, seconds=0.0) > 0


def test_quick_run_reports_time_to_quality_fields(tmp_path):
    out = tmp_path / "tt.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "train_throughput.py"), "--quick", "--dataset", str(MINI),
                        "--precision", "fp32", "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["quick"] and res["runs"] == 1 and res["machine"]["cpu"]
    assert {"bf16_units", "torch_cpu_capability"} <= res["capability"].keys()
    ref, ours, mm = res["reference"], res["vae_hub"], res["matmul"]
    assert ref["train_seconds"] > 0 and ours["wall_seconds"] > ours["train_seconds"] > 0
    assert ours["precision"] == "fp32" and mm["dtype"] == "float32"
    assert res["valid"] == (ours["test_loss"] <= ref["test_loss"])
    assert abs(res["ratio"] - ref["train_seconds"] / ours["wall_seconds"]) < 1e-9
    assert 0 < mm["share_of_ceiling"] and mm["flops_per_image"] > 0
    for text in ("time to quality:", "CPU:", "bf16 units:", "matmul:", "images/s"):
        assert text in r.stdout


def test_recipe_pilot_trains_with_overrides_and_prints_the_losses(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "recipe_pilot.py"), "vae-z2",
                        '{"epochs": 2, "batch_size": 256, "lr": 3e-3, "lr_warmup": 0.05, "lr_schedule": "linear"}',
                        "--dataset", str(MINI), "--threads", "1", "--keep", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    line = r.stdout.splitlines()[-1]
    assert line.startswith('vae-z2 {"epochs": 2') and "bundled model" in line
    assert len(line.split("test loss by epoch ")[1].split(";")[0].split()) == 2  # one loss per epoch
    # --keep: the pilot's model folder, complete and stored as train.py --half stores it
    record = json.loads((tmp_path / "vae-z2" / "history.json").read_text())
    assert (tmp_path / "vae-z2" / "README.md").is_file() and record["storage_dtype"] == "float16"
    assert record["pilot"]["lr"] == 3e-3 and abs(record["float16_check"]["delta"]) < 0.1
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "recipe_pilot.py"), "vae-z2", '{"lr_schedule": "step"}',
                          "--dataset", str(MINI)], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1 and "lr_schedule" in bad.stderr and "Traceback" not in bad.stderr


def test_recipe_pilot_measures_the_prior_samples_on_the_way_as_at_the_end():
    """--fd-every stops and resumes the run to measure the samples: the last FD equals an uninterrupted run's, and
    so do the figures of --ema's average of the weights, which follows the run across its stops."""
    def pilot(*flags: str) -> tuple[str, str]:
        r = subprocess.run([sys.executable, str(ROOT / "bench" / "recipe_pilot.py"), "vae-z2", '{"epochs": 2}',
                            "--dataset", str(MINI), "--ema", "0.9", *flags], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        *_, line, ema = r.stdout.splitlines()
        return line.split("prior-sample FD by epoch ")[1], ema.split("of the weights: ")[1]

    (every, ema_every), (end, ema_end) = pilot("--fd-every", "1"), pilot("--fd")
    assert every.startswith("1: ") and " 2: " in every and end.startswith("2: "), (every, end)
    assert every.split(" 2: ")[1] == end.removeprefix("2: "), (every, end)
    assert ema_every.startswith("epoch 1: test loss ") and ema_every.split("; ")[1] == ema_end, (ema_every, ema_end)

import json
import os
import subprocess
import sys

import pytest
import torch

from vae_hub.training.tracking import epoch_metrics, image_grid

from .conftest import MINI, ROOT

READ_LOGS = """
import json, sys
from trackio.sqlite_storage import SQLiteStorage
project = sys.argv[1]
runs = SQLiteStorage.get_runs(project)
print(json.dumps({"runs": runs, "logs": SQLiteStorage.get_logs(project, runs[0]) if runs else [],
                  "config": SQLiteStorage.get_run_config(project, runs[0]) if runs else None}, default=str))
"""


def test_epoch_metrics_flattens_a_record():
    record = {"epoch": 3, "train_loss": 1.5, "train_recon": 1.0, "train_kl": 0.5, "test_loss": 2.5, "test_recon": 2.0,
              "test_kl": 0.5, "seconds": 0.25, "lr": 1e-3, "temperature": None, "grad_norms": {"enc.0.weight": 4.0}}
    assert epoch_metrics(record) == {"train/loss": 1.5, "train/recon": 1.0, "train/kl": 0.5, "test/loss": 2.5,
                                     "test/recon": 2.0, "test/kl": 0.5, "lr": 1e-3, "seconds": 0.25,
                                     "grad_norm/enc.0.weight": 4.0}


def test_image_grid_places_every_tile():
    tiles = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 1, 28, 28) + 1
    grid = image_grid(tiles)
    assert grid.shape == (2 * 30 + 2, 3 * 30 + 2, 3)
    assert grid[2, 2].tolist() == [1, 1, 1] and grid[32, 32].tolist() == [5, 5, 5]  # first and fifth tile
    assert grid[0, 0].tolist() == [0, 0, 0] and grid[40, 70].tolist() == [0, 0, 0]  # gutter, empty sixth slot


def test_train_track_logs_what_history_json_holds(tmp_path):
    pytest.importorskip("trackio", reason="trackio (optional, pinned in requirements.txt) is not installed")
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("TRACKIO_SPACE_ID", None)
    env.pop("TRACKIO_SERVER_URL", None)
    r = subprocess.run([sys.executable, str(ROOT / "train.py"), "--variants", "vae-z2", "--dataset", str(MINI), "--quick",
                        "--epochs", "2", "--out", str(tmp_path / "runs"), "--no-progress", "--track",
                        "--track-project", "vae-hub-test"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    history = json.loads((tmp_path / "runs" / "vae-z2" / "history.json").read_text())["epochs"]
    r = subprocess.run([sys.executable, "-c", READ_LOGS, "vae-hub-test"], capture_output=True, text=True, env=env,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert len(got["runs"]) == 1 and got["runs"][0].startswith("vae-z2-")
    assert got["config"]["variant"] == "vae-z2" and got["config"]["epochs"] == 2
    logs = got["logs"]
    assert [log["step"] for log in logs] == [h["epoch"] for h in history] == [1, 2]
    for log, h in zip(logs, history):
        expected = epoch_metrics(h)
        assert len(expected) > 10 and any(k.startswith("grad_norm/") for k in expected)
        assert {k: log[k] for k in expected} == expected  # exactly the values history.json holds
        for key in ("progress/samples", "progress/recons"):
            assert log[key]["_type"] == "trackio.image"
            assert (tmp_path / "trackio" / "media" / log[key]["file_path"]).is_file()


def test_track_space_needs_track():
    r = subprocess.run([sys.executable, str(ROOT / "train.py"), "--track-space", "me/runs", "--list"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "--track-space needs --track" in r.stderr


def test_trackio_is_optional_and_its_absence_is_explained(monkeypatch):
    from vae_hub.training import tracking

    code = "import sys, train; train.main(['--list']); assert 'trackio' not in sys.modules, 'imported without --track'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    monkeypatch.setitem(sys.modules, "trackio", None)  # as if not installed
    with pytest.raises(ImportError, match="optional package trackio.*pip install 'trackio"):
        tracking.Tracker("p", "r", {})


def test_sweep_track_logs_one_run_per_trial(tmp_path):
    pytest.importorskip("trackio", reason="trackio (optional, pinned in requirements.txt) is not installed")
    space = tmp_path / "s.yaml"
    space.write_text("base: vae-z2\nfixed: {epochs: 1, hidden: [16]}\nparams:\n  lr: {low: 1.0e-3, high: 1.0e-2}\n")
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "vae_hub.sweep", "--space", str(space), "--trials", "1", "--dataset", str(MINI),
                        "--out", str(tmp_path / "out"), "--track", "--track-project", "sweep-test"],
                       capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-c", READ_LOGS, "sweep-test"], capture_output=True, text=True, env=env, cwd=tmp_path)
    got = json.loads(r.stdout)
    assert got["runs"] == ["s-trial0000"] and got["config"]["epochs"] == 1
    history = json.loads((tmp_path / "out" / "trials" / "trial-0000" / "history.json").read_text())["epochs"]
    assert [{k: log[k] for k in epoch_metrics(h)} for log, h in zip(got["logs"], history)] == \
           [epoch_metrics(h) for h in history]

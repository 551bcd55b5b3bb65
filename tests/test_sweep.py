import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml

import vae_hub
from vae_hub.hub.repo import model_folders
from vae_hub.sweep.report import update_readme
from vae_hub.sweep.search import CLASSIC_GRID, CLASSIC_GRID_QUICK, Objective, main
from vae_hub.sweep.space import load_space, parse_space
from vae_hub.training.loop import CHECKPOINT, fit, load_checkpoint, make_optimizer

from .conftest import MINI, ROOT

TINY = {"base": "vae-z2", "fixed": {"epochs": 2},
        "params": {"lr": {"low": 1e-3, "high": 1e-2, "log": True}, "hidden": {"choices": [[16], [24]]}}}


def _yaml(tmp_path: Path, data: dict, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def small(mini):
    return mini[0].subset(300), mini[1].subset(200)


# ---------------------------------------------------------------------------- spaces
def test_shipped_spaces_parse_and_the_classic_grid_has_3125_runs():
    grid = load_space(CLASSIC_GRID)
    assert grid.grid_size() == 5 ** 5 == len(grid.grid_points())
    assert set(grid.grid) == {"epochs", "batch_size", "lr", "hidden", "z_dim"}
    quick = load_space(CLASSIC_GRID_QUICK)
    assert set(quick.grid) == set(grid.grid) and quick.grid_size() < 10
    space = load_space(ROOT / "sweeps" / "vae-z20-lr-bs-hidden.yaml")
    assert space.base == "vae-z20" and set(space.params) == {"lr", "batch_size", "hidden"}


@pytest.mark.parametrize("data,message", [
    ({"base": "nope", "params": {"lr": {"low": 1e-4, "high": 1e-2}}}, "not a registry variant"),
    ({"params": {"learning_rate": {"low": 1e-4, "high": 1e-2}}}, "'learning_rate' is not a searchable VAEConfig field"),
    ({"params": {"hidden": {"low": 100, "high": 800}}}, "takes {choices"),
    ({"params": {"batch_size": {"low": 32.0, "high": 256}}}, "expected int bounds"),
    ({"params": {"lr": {"low": 0.0, "high": 1e-2, "log": True}}}, "log range needs low > 0"),
    ({"params": {"lr": {"choices": []}}}, "non-empty list"),
    ({"fixed": {"lr": 1e-3}, "params": {"lr": {"low": 1e-4, "high": 1e-2}}}, "both fixed and searched"),
    ({"params": {"lr": {"low": 1e-4, "high": 1e-2}}, "grid": {"lr": [1e-3]}}, "exactly one of params"),
    ({"grid": {"lr": 1e-3}}, "grid.lr must be a non-empty list"),
    ({"fixed": {"backbone": "rnn"}, "grid": {"lr": [1e-3]}}, "backbone"),
])
def test_bad_spaces_are_named(data, message):
    with pytest.raises(ValueError, match=message):
        parse_space(data, "s.yaml")


# ---------------------------------------------------------------------------- the trainer hook
def test_pruning_from_the_epoch_hook_stops_training_after_that_epoch(small, tmp_path):
    cfg = vae_hub.get_config("vae-z2", epochs=3, hidden=[16])
    seen = []

    def hook(record, frame):
        seen.append(record["epoch"])
        assert frame["samples"].dtype == torch.uint8 and frame["samples"].shape[0] == 16
        raise optuna.TrialPruned("stop")

    with pytest.raises(optuna.TrialPruned):
        fit(cfg, *small, tmp_path, progress_bar=False, log=lambda s: None, on_epoch=hook)
    assert seen == [1]
    model = vae_hub.VAE(cfg)
    state, _ = load_checkpoint(tmp_path / CHECKPOINT, model, make_optimizer(model))
    assert state["epoch"] == 1 and len(state["history"]) == 1


def test_a_pruned_trial_is_recorded_and_keeps_a_model_folder(small, tmp_path):
    space = parse_space(TINY, "tiny")
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))  # any loss > 0 is pruned
    study.optimize(Objective(space, *small, tmp_path, study_name="t", log=lambda s: None), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values.keys() == {1}
    folder = Path(trial.user_attrs["folder"])
    assert model_folders(folder) == [folder] and not (folder / "checkpoint").exists()
    hist = json.loads((folder / "history.json").read_text())
    assert hist["pruned_after_epoch"] == 1 and len(hist["epochs"]) == 1
    assert hist["epochs"][0]["test_loss"] == trial.intermediate_values[1] == trial.user_attrs["test_loss"]


# ---------------------------------------------------------------------------- the command
def test_default_sqlite_sweep_writes_folders_reports_and_a_pasteable_entry(tmp_path, capsys):
    out = tmp_path / "out"
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- sweep:start -->\nSTALE\n<!-- sweep:end -->\nrest\n")
    assert main(["--space", str(_yaml(tmp_path, TINY)), "--trials", "3", "--dataset", str(MINI), "--out", str(out),
                 "--no-prune", "--seed", "0", "--update-readme", str(readme)]) == 0
    assert (out / "study.db").is_file()
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [int(r["rank"]) for r in rows] == [1, 2, 3]
    assert sorted(float(r["value"]) for r in rows) == [float(r["value"]) for r in rows]
    assert float(rows[0]["value"]) == study.best_value
    for t in complete:  # each trial is a loadable model folder whose last test loss is the trial's value
        folder = Path(t.user_attrs["folder"])
        hist = json.loads((folder / "history.json").read_text())
        assert hist["epochs"][-1]["test_loss"] == t.value and hist["sweep"]["trial"] == t.number
        model = vae_hub.load(str(folder))
        assert model.config.hidden == json.loads(t.params["hidden"]) and model.config.lr == t.params["lr"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["COMPLETE"] == 3 and summary["best"]["trial"] == study.best_trial.number
    assert {"importance.png", "parallel_coordinate.png"} <= set(summary["files"])
    assert all((out / f).stat().st_size > 1000 for f in ("importance.png", "parallel_coordinate.png"))
    assert set(summary["importances"]) == {"lr", "hidden"}
    # the registry entry rebuilds exactly the best trial's config
    from vae_hub.model.variants import _v

    entry = eval(summary["best"]["registry_entry"].rstrip(","), {"_v": _v})  # our own output, as variants.py runs it
    best = vae_hub.load(summary["best"]["folder"]).config
    skip = {"variant", "description", "tags"}
    assert {k: v for k, v in entry.to_dict().items() if k not in skip} == \
           {k: v for k, v in best.to_dict().items() if k not in skip}
    text = readme.read_text()
    assert "STALE" not in text and text.startswith("intro\n<!-- sweep:start -->") and text.endswith("<!-- sweep:end -->\nrest\n")
    assert "| rank | trial |" in text and f"**Best:** trial {study.best_trial.number}" in text
    assert "![parameter importance](out/importance.png)" in text
    assert capsys.readouterr().out.count("| rank |") == 1
    # --report-only rewrites the reports from the storage, naming the command that ran the trials
    (out / "results.csv").unlink()
    assert main(["--space", str(_yaml(tmp_path, TINY)), "--out", str(out), "--report-only"]) == 0
    assert len(list(csv.DictReader((out / "results.csv").open()))) == 3
    assert "--trials 3" in json.loads((out / "summary.json").read_text())["command"]


def test_grid_runs_every_combination_once(tmp_path):
    grid = {"base": "vae-z2", "fixed": {"epochs": 1, "hidden": [16]}, "grid": {"lr": [1e-3, 3e-3], "z_dim": [2, 3]}}
    out = tmp_path / "g"
    assert main(["--grid", "--space", str(_yaml(tmp_path, grid)), "--dataset", str(MINI), "--quick", "--out", str(out)]) == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    got = sorted((t.params["lr"], t.params["z_dim"]) for t in study.trials)
    assert got == sorted(itertools.product([1e-3, 3e-3], [2, 3]))


@pytest.mark.parametrize("argv,message", [
    (["--grid", "--space", "TINY"], "--grid needs a YAML with a grid: section"),
    ([], "--space SPACE.yaml is required"),
    (["--space", "TINY", "--storage", "nowhere"], "expected an RDB URL"),
    (["--space", "TINY", "--track-space", "me/runs"], "--track-space needs --track"),
    (["--space", "missing.yaml"], "not found: expected a YAML file"),
])
def test_command_errors_are_clear(tmp_path, capsys, argv, message):
    argv = [str(_yaml(tmp_path, TINY)) if a == "TINY" else a for a in argv]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path / "o"), "--dataset", str(MINI)])
    assert message in str(e.value)


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_two_worker_processes_share_one_study(tmp_path, storage):
    url = f"sqlite:///{tmp_path / 'shared.db'}" if storage == "sqlite" else f"journal:{tmp_path / 'shared.log'}"
    space = _yaml(tmp_path, {**TINY, "fixed": {"epochs": 1}})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "vae_hub.sweep", "--space", str(space), "--study", "shared",
                                 "--storage", url, "--trials", "4", "--dataset", str(MINI), "--out", str(tmp_path / "out"),
                                 "--seed", str(seed), "--no-prune"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    for w in workers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    if storage == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        study = optuna.load_study(study_name="shared", storage=JournalStorage(JournalFileBackend(url[8:])))
    else:
        study = optuna.load_study(study_name="shared", storage=url)
    states = [t.state for t in study.trials]
    assert 4 <= len(states) <= 5 and all(s == optuna.trial.TrialState.COMPLETE for s in states)  # each stops at >= 4
    assert len({t.number for t in study.trials}) == len(states)
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # both processes ran trials of the one study
    assert len(model_folders(tmp_path / "out" / "trials")) == len(states)


def test_sweep_readme_markers_are_required(tmp_path):
    path = tmp_path / "R.md"
    path.write_text("no markers")
    with pytest.raises(ValueError, match="no '<!-- sweep:start -->' … '<!-- sweep:end -->' markers"):
        update_readme(path, "x")


def test_an_evaluate_metric_as_objective_with_pruning_values_signed_to_its_direction(tmp_path):
    out = tmp_path / "m"
    assert main(["--space", str(_yaml(tmp_path, TINY)), "--trials", "1", "--dataset", str(MINI), "--out", str(out),
                 "--metric", "probe_accuracy", "--quick"]) == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    t = study.trials[0]
    folder = Path(t.user_attrs["folder"])
    metrics = json.loads((folder / "metrics.json").read_text())
    assert 0 < t.value < 1 and t.value == pytest.approx(metrics["probe_accuracy"], rel=1e-5)
    history = json.loads((folder / "history.json").read_text())["epochs"]
    assert t.intermediate_values == {h["epoch"]: -h["test_loss"] for h in history}  # higher is better for the pruner too

"""Hyperparameter search over any VAEConfig field with Optuna; every trial is a normal model folder.

    python -m vae_hub.sweep --space sweeps/vae-z20-lr-bs-hidden.yaml --trials 16 --dataset ../shared/mnist
    python -m vae_hub.sweep --grid [--quick]            # the classic tutorial grid (sweeps/classic-grid*.yaml)
    python -m vae_hub.sweep --space S.yaml --study NAME --storage URL --trials N   # run on every worker

The objective is the last epoch's test loss (-ELBO, nats/image) or ``--metric`` from vae_hub.evaluation.evaluate;
the median pruner stops trials whose per-epoch test loss falls behind. Storage defaults to
OUT/study.db (SQLite, nothing else to run); workers share a study through the same ``--study`` and
``--storage``: a PostgreSQL/MySQL URL (many machines), ``journal:PATH`` (Optuna's journal file on a
shared filesystem) or one SQLite file (one machine). Each worker stops once the study holds N trials.
Outputs in OUT: trials/trial-NNNN/ (model folders), results.csv, results.md, summary.json,
importance.png, parallel_coordinate.png, and the best config as a registry entry. Live view:
``optuna-dashboard sqlite:///OUT/study.db`` (pip install optuna-dashboard; not required).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import optuna
import torch

from vae_hub.cli import cpu_model, hardware, start, training_process
from vae_hub.data.mnist import DEFAULT_DATASET, Split, load_split, shown_dataset
from vae_hub.model.vae import VAE
from vae_hub.sweep.report import write_report
from vae_hub.sweep.space import Space, encode, load_space, make_config, suggest
from vae_hub.training.loop import CHECKPOINT, fit, load_checkpoint, make_optimizer, resolve_device

SWEEPS_DIR = Path(__file__).resolve().parents[2] / "sweeps"
CLASSIC_GRID, CLASSIC_GRID_QUICK = SWEEPS_DIR / "classic-grid.yaml", SWEEPS_DIR / "classic-grid-quick.yaml"
QUICK = dict(train=2048, test=512)  # --quick: the same subsets as train.py --quick
# metric -> study direction; test_loss comes from the trainer, the rest from vae_hub.evaluation.evaluate
METRICS = {"test_loss": "minimize", "nll": "minimize", "elbo_bin": "minimize", "fd": "minimize",
           "probe_accuracy": "maximize", "mig": "maximize"}


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """``journal:PATH`` for Optuna's journal file; any SQLAlchemy URL (sqlite:///, postgresql://, mysql://) for an RDB."""
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url[len("journal:"):]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise ValueError(f"storage {url!r}: expected an RDB URL (sqlite:///PATH, postgresql://..., mysql://...) "
                         "or journal:PATH")
    kwargs = {}
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"connect_args": {"timeout": 120}}  # workers on one SQLite file wait for its lock instead of failing
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except (IntegrityError, OperationalError):  # workers starting together race to create the schema: the loser
            if attempt == 4:                          # finds it made on the next try
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


class Objective:
    """Train one trial into OUT/trials/trial-NNNN and return its metric; report the test loss every epoch."""

    def __init__(self, space: Space, train: Split, test: Split, out: Path, *, metric: str = "test_loss",
                 device: str = "cpu", dataset: str = "", study_name: str = "", quick: bool = False,
                 track: dict | None = None, log=print):
        self.space, self.train, self.test, self.out, self.metric = space, train, test, out, metric
        self.sign = 1.0 if METRICS[metric] == "minimize" else -1.0  # pruning compares values in the study's direction
        self.device, self.dataset, self.study_name, self.quick = resolve_device(device), dataset, study_name, quick
        self.track, self.log = track, log
        self.eval = None  # (EvalData, classifier, Settings), prepared on first use

    def info(self, history: list[dict], trial: optuna.Trial) -> dict:
        return {"dataset": shown_dataset(self.dataset), "n_train": len(self.train), "n_test": len(self.test),
                "seconds_total": sum(h["seconds"] for h in history), "hardware": hardware(), "quick": self.quick,
                "sweep": {"study": self.study_name, "trial": trial.number, "params": trial.params}}

    def __call__(self, trial: optuna.Trial) -> float:
        from vae_hub.hub.save import save_model_folder

        values = suggest(trial, self.space)
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        config = make_config(self.space, values, f"Optuna sweep {self.study_name!r}, trial {trial.number}, from "
                                                 f"{self.space.base}: {shown}.")
        folder = self.out / "trials" / f"trial-{trial.number:04d}"
        shutil.rmtree(folder / "checkpoint", ignore_errors=True)  # trial numbers are new: anything here is stale
        trial.set_user_attr("folder", str(folder))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        tracker = None
        if self.track is not None:
            from vae_hub.training.tracking import Tracker

            tracker = Tracker(self.track["project"], f"{self.study_name}-trial{trial.number:04d}", config.to_dict(),
                              space_id=self.track.get("space"), group=self.study_name)

        def on_epoch(record: dict, frame: dict) -> None:
            if tracker is not None:
                tracker(record, frame)
            trial.set_user_attr("epochs_run", record["epoch"])
            trial.set_user_attr("test_loss", record["test_loss"])
            trial.report(self.sign * record["test_loss"], record["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"test loss {record['test_loss']:.2f} after epoch {record['epoch']} "
                                         "is behind the median of earlier trials")

        t0 = time.perf_counter()
        try:
            model, history, progress = fit(config, self.train, self.test, folder, device=self.device, progress_bar=False,
                                 log=lambda s: self.log(f"[trial {trial.number}] {s}"), on_epoch=on_epoch)
        except optuna.TrialPruned:
            self._save_pruned(folder, config, trial)
            raise
        finally:
            if tracker is not None:
                tracker.finish()
            trial.set_user_attr("seconds", time.perf_counter() - t0)
        value = history[-1]["test_loss"]
        save_model_folder(model, folder, history, self.info(history, trial), self.test, progress)
        shutil.rmtree(folder / "checkpoint", ignore_errors=True)
        if self.metric != "test_loss":
            value = self._evaluate(model, folder)
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        return value

    def _save_pruned(self, folder: Path, config, trial: optuna.Trial) -> None:
        """A pruned trial's folder holds the model as it stood when pruned (the last checkpoint)."""
        from vae_hub.hub.save import save_model_folder

        model = VAE(config)
        state, progress = load_checkpoint(folder / CHECKPOINT, model, make_optimizer(model))
        info = {**self.info(state["history"], trial), "pruned_after_epoch": state["epoch"]}
        save_model_folder(model.eval(), folder, state["history"], info, self.test, progress)
        shutil.rmtree(folder / "checkpoint", ignore_errors=True)

    def _evaluate(self, model: VAE, folder: Path) -> float:
        from vae_hub.evaluation import evaluate as E

        if self.eval is None:
            settings = E.Settings(**E.QUICK) if self.quick else E.Settings()
            clf = E.load_classifier(None)
            self.eval = (E.prepare(self.train, self.test, clf, settings), clf, settings)
        d, clf, settings = self.eval
        r = E.evaluate_model(model, d, clf, settings, [], log=self.log)
        E.write_model_metrics(folder, {**r, "n_test": len(self.test)}, settings,
                              {"dataset": shown_dataset(self.dataset), "n_test": len(self.test), "hardware": hardware()})
        if r.get(self.metric) is None:
            raise ValueError(f"metric {self.metric!r} is not defined for {model.config.variant} "
                             f"({r.get('nll_note', 'see vae_hub.evaluation.evaluate')})")
        return float(r[self.metric])


def make_study(space: Space, study_name: str, storage: str, *, trials: int, seed: int | None, prune: bool,
               prune_after: int, direction: str) -> optuna.Study:
    if space.grid is not None:

        sampler = optuna.samplers.GridSampler({n: [encode(v) for v in vals] for n, vals in space.grid.items()}, seed=seed)
    else:  # a third of the trials (3 to 10) explore at random before TPE models the good region
        sampler = optuna.samplers.TPESampler(n_startup_trials=max(3, min(10, trials // 3)), seed=seed)
    # steps are epochs, counted from 1: the earliest pruning is after epoch prune_after + 1
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=min(5, max(2, trials // 4)), n_warmup_steps=prune_after + 1)
              if prune else optuna.pruners.NopPruner())
    return optuna.create_study(study_name=study_name, storage=open_storage(storage), sampler=sampler, pruner=pruner,
                               direction=direction, load_if_exists=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", help="search space YAML (see sweeps/); with --grid, a grid YAML "
                                   "(default sweeps/classic-grid.yaml, or classic-grid-quick.yaml with --quick)")
    p.add_argument("--grid", action="store_true", help="run every combination of the YAML's grid axes once")
    p.add_argument("--trials", type=int, help="stop once the study holds this many trials, all workers together "
                                              "(default 20; with --grid the grid size)")
    p.add_argument("--study", help="study name (default: the space file's name)")
    p.add_argument("--storage", help="sqlite:///PATH, postgresql://..., mysql://... or journal:PATH (default: "
                                     "sqlite:///OUT/study.db)")
    p.add_argument("--out", help="trial folders and reports (default runs/sweeps/STUDY)")
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="Hub id, or local folder/parquet in the ylecun/mnist layout")
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK['train']} train / {QUICK['test']} test images "
                                                        "(and quick evaluation settings)")
    p.add_argument("--metric", default="test_loss", choices=list(METRICS),
                   help="objective: test_loss (-ELBO from the trainer, default) or a vae_hub.evaluation.evaluate metric")
    p.add_argument("--no-prune", action="store_true", help="no median pruning")
    p.add_argument("--prune-after", type=int, default=1, help="epochs every trial runs before it can be pruned (default 1)")
    p.add_argument("--seed", type=int, help="sampler seed (give each worker its own)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--threads", type=int, help="torch CPU threads per worker (default: torch's choice; 1 on a busy machine)")
    p.add_argument("--report-only", action="store_true", help="write the reports from the storage; train nothing")
    p.add_argument("--report-dir", help="also copy the light reports (CSV, Markdown, JSON, PNGs) here, e.g. to commit them")
    p.add_argument("--update-readme", metavar="FILE", help="replace the text between <!-- sweep:start --> and "
                                                           "<!-- sweep:end --> in FILE with the results")
    p.add_argument("--track", action="store_true", help="log every trial's epochs to trackio (optional dependency)")
    p.add_argument("--track-project", default="vae-hub-sweep", help="trackio project (default vae-hub-sweep)")
    p.add_argument("--track-space", metavar="NS/NAME", help="with --track: sync to this Hugging Face Space")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, command = start("vae_hub.sweep", parse_args, argv)
    training_process()  # a command line: freed memory reused, denormals flushed (vae_hub.cli)
    try:
        if args.track_space and not args.track:
            raise ValueError("--track-space needs --track")
        if args.track:
            from vae_hub.training.tracking import require_trackio

            require_trackio()
        space_path = args.space or (CLASSIC_GRID_QUICK if args.quick else CLASSIC_GRID) if args.grid else args.space
        if space_path is None:
            raise ValueError("--space SPACE.yaml is required (or --grid for the classic grid); see sweeps/")
        space = load_space(space_path)
        if args.grid != (space.grid is not None):
            raise ValueError(f"{space_path}: " + ("--grid needs a YAML with a grid: section" if args.grid else
                                                  "this YAML holds a grid: run it with --grid"))
        trials = args.trials or (space.grid_size() if space.grid is not None else 20)
        if trials < 1:
            raise ValueError(f"--trials must be >= 1, got {trials}")
        study_name = args.study or Path(space_path).stem
        out = Path(args.out or Path("runs") / "sweeps" / study_name)
        storage = args.storage or f"sqlite:///{out / 'study.db'}"
        study = make_study(space, study_name, storage, trials=trials, seed=args.seed, prune=not args.no_prune,
                           prune_after=args.prune_after, direction=METRICS[args.metric])
        if not args.report_only:
            train, test = load_split(args.dataset, "train"), load_split(args.dataset, "test")
            if args.quick:
                train, test = train.subset(QUICK["train"]), test.subset(QUICK["test"])
            track = {"project": args.track_project, "space": args.track_space} if args.track else None
            objective = Objective(space, train, test, out, metric=args.metric, device=args.device, dataset=args.dataset,
                                  study_name=study_name, quick=args.quick, track=track)
            for key, value in (("command", command), ("hardware", hardware()), ("cpu", cpu_model())):
                study.set_user_attr(key, value)
            done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL,
                    optuna.trial.TrialState.RUNNING)
            # a diverging trial (non-finite loss) fails alone; the study goes on
            study.optimize(objective, n_trials=trials, catch=(FloatingPointError,),
                           callbacks=[optuna.study.MaxTrialsCallback(trials, states=done)])
        summary = write_report(study, out, metric=args.metric, space=space, command=command, storage=storage,
                               report_dir=args.report_dir, readme=args.update_readme)
    except (FileNotFoundError, ValueError, ImportError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    print(summary["text"])
    return 0


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    sys.exit(main())

"""Reports of a sweep, read back from the Optuna storage: results table (CSV, Markdown), importance and
parallel-coordinate plots, summary.json, the best config as a registry entry, and the block of docs/sweep.md."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import warnings
from datetime import timedelta
from pathlib import Path

import optuna

from vae_hub.cli import cpu_model
from vae_hub.hub.folders import read_config
from vae_hub.model.config import VAEConfig
from vae_hub.sweep.space import NOT_SEARCHABLE, Space, decode

README_START, README_END = "<!-- sweep:start -->", "<!-- sweep:end -->"
LIGHT_FILES = ("results.csv", "results.md", "summary.json", "importance.png", "parallel_coordinate.png")
STATE_ORDER = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2, "RUNNING": 3, "WAITING": 4}


def masked(url: str) -> str:
    """A storage URL fit to print: any password replaced by ***."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


def trial_rows(study: optuna.Study) -> list[dict]:
    """One row per trial, ranked: completed trials by their value in the study's direction, then pruned
    ones by their last test loss, then the rest."""
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({"trial": t.number, "state": t.state.name, "value": t.value,
                     "test_loss": t.user_attrs.get("test_loss"), "epochs_run": t.user_attrs.get("epochs_run"),
                     **{f"param:{k}": decode(v) for k, v in t.params.items()},
                     "seconds": t.user_attrs.get("seconds"), "folder": t.user_attrs.get("folder", "")})
    inf = float("inf")

    def key(r: dict) -> tuple:
        score = sign * r["value"] if r["state"] == "COMPLETE" else (r["test_loss"] if r["test_loss"] is not None else inf)
        return STATE_ORDER.get(r["state"], 9), score, r["trial"]

    rows.sort(key=key)
    for i, r in enumerate(rows, 1):
        r["rank"] = i if r["state"] == "COMPLETE" else None
    return rows


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 0.01 else f"{v:.2f}"
    return str(v)


def write_csv(rows: list[dict], path: Path) -> None:
    cols = ["rank", "trial", "state", "value", "test_loss", "epochs_run",
            *sorted({k for r in rows for k in r if k.startswith("param:")}), "seconds", "folder"]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})


def markdown_table(rows: list[dict], metric: str) -> str:
    params = sorted({k for r in rows for k in r if k.startswith("param:")})
    head = ["rank", "trial", "state", metric, "epochs run", *[p[6:] for p in params], "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        value = _fmt(r["value"]) if r["state"] == "COMPLETE" else (
            f"({r['test_loss']:.2f})" if r["state"] == "PRUNED" and r["test_loss"] is not None else "–")
        cells = [_fmt(r["rank"]), str(r["trial"]), r["state"].lower(), value, _fmt(r["epochs_run"]),
                 *[_fmt(r.get(p)) for p in params], _fmt(r["seconds"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def importance_evaluator() -> tuple[optuna.importance.BaseImportanceEvaluator, str]:
    """fANOVA (Optuna's default) needs scikit-learn's random forests; PED-ANOVA needs nothing more."""
    try:
        import sklearn  # noqa: F401

        return optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA (Optuna, scikit-learn forests, seed 0)"
    except ImportError:
        return optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA (Optuna; scikit-learn not installed)"


def write_plots(study: optuna.Study, out: Path, names: list[str]) -> tuple[dict[str, float], str, list[str]]:
    """importance.png and parallel_coordinate.png; returns (importances, evaluator, notes on what was skipped)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    notes, importances = [], {}
    evaluator, ev_name = importance_evaluator()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "Attempting to set identical", UserWarning)  # an axis with one value tried
        for path in (out / "importance.png", out / "parallel_coordinate.png"):
            path.unlink(missing_ok=True)  # never leave a stale figure beside fresh numbers
        if len(complete) < 2:
            return {}, ev_name, [f"plots need at least 2 completed trials; the study has {len(complete)}"]
        try:
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
            ax = ovm.plot_param_importances(study, evaluator=evaluator)
            ax.figure.set_size_inches(6, 0.6 + 0.5 * len(names))
            ax.figure.savefig(out / "importance.png", dpi=90, bbox_inches="tight")
            plt.close(ax.figure)
        except (RuntimeError, ValueError, ZeroDivisionError) as e:  # e.g. every completed trial has the same params
            notes.append(f"importance not computed: {e}")
        ax = ovm.plot_parallel_coordinate(study, params=names)
        ax.figure.set_size_inches(max(6, 1.8 * len(names)), 4)
        ax.figure.savefig(out / "parallel_coordinate.png", dpi=90, bbox_inches="tight")
        plt.close(ax.figure)
    return {k: float(v) for k, v in importances.items()}, ev_name, notes


def registry_entry(config: VAEConfig, name: str, description: str) -> str:
    """The config as a line for vae_hub/model/variants.py's _ALL list: only the fields that differ from VAEConfig's defaults."""
    default = VAEConfig().to_dict()
    kw = ", ".join(f"{k}={v!r}" for k, v in config.to_dict().items()
                   if k not in NOT_SEARCHABLE and v != default[k])
    return f"_v({name!r}, {description!r},\n   {[*config.tags, 'tuned']!r}, {kw}),"


def render_markdown(s: dict, table: str, image_prefix: str = "") -> str:
    lines = [f"Study `{s['study']}` ({s['storage']}): {s['counts']['COMPLETE']} completed, "
             f"{s['counts']['PRUNED']} pruned, {s['counts']['FAIL']} failed of {s['n_trials']} trials; objective "
             f"`{s['metric']}` ({s['direction']}); {s['workers']} worker(s), wall time "
             f"{timedelta(seconds=round(s['wall_seconds']))} on {s['cpu']} ({s['hardware']}).",
             "", f"Command: `{s['command']}`", ""]
    if s["best"]:
        b = s["best"]
        found = ", ".join(f"{k}={v}" for k, v in b["params"].items())
        lines += [f"**Best:** trial {b['trial']}, {s['metric']} = {b['value']:.2f} with {found}."]
    if s["importances"]:
        ranked = ", ".join(f"{k} {v:.2f}" for k, v in s["importances"].items())
        lines += [f"**Importance** ({s['importance_evaluator']}): {ranked}."]
    lines += [f"_{n}_" for n in s["notes"]]
    lines += ["", table, "", "A pruned trial shows in brackets its test loss at the epoch it was stopped after; "
              "seconds include writing the trial's model folder.", ""]
    for f, alt in (("importance.png", "parameter importance"), ("parallel_coordinate.png", "parallel coordinates")):
        if f in s["files"]:
            lines.append(f"![{alt}]({image_prefix}{f})")
    if s["best"]:
        lines += ["", "The best config, ready to paste into `vae_hub/model/variants.py`:", "", "```python",
                  s["best"]["registry_entry"], "```"]
    return "\n".join(lines).rstrip() + "\n"


def update_readme(path: str | Path, block: str) -> None:
    from vae_hub.evaluation.report import replace_block

    replace_block(path, block, README_START, README_END)


def write_report(study: optuna.Study, out: Path, *, metric: str, space: Space, command: str, storage: str,
                 report_dir: str | None = None, readme: str | None = None) -> dict:
    from vae_hub.cli import hardware

    out.mkdir(parents=True, exist_ok=True)
    rows = trial_rows(study)
    trials, attrs = study.get_trials(deepcopy=False), study.user_attrs  # each a storage query: once
    counts = {s: sum(t.state.name == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    write_csv(rows, out / "results.csv")
    importances, ev_name, notes = write_plots(study, out, space.names)
    best = None
    if counts["COMPLETE"]:
        bt = study.best_trial
        folder = Path(bt.user_attrs.get("folder", ""))
        config = read_config(folder)
        params = {k: decode(v) for k, v in bt.params.items()}
        desc = (f"{space.base} tuned by the Optuna sweep {study.study_name!r}: best of {counts['COMPLETE']} completed "
                f"trials ({', '.join(f'{k}={v}' for k, v in params.items())}).")
        best = {"trial": bt.number, "value": bt.value, "params": params, "folder": str(folder),
                "registry_entry": registry_entry(config, f"{space.base}-tuned", desc)}
    summary = {"study": study.study_name, "storage": masked(storage), "metric": metric,
               "direction": study.direction.name.lower(), "n_trials": len(trials), "counts": counts,
               "workers": len({t.user_attrs.get("worker") for t in trials if t.user_attrs.get("worker")}),
               "wall_seconds": (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0,
               "trial_seconds": sum(t.user_attrs.get("seconds", 0.0) for t in trials),
               # as recorded by the last worker that ran trials (a --report-only run may be elsewhere)
               "cpu": attrs["cpu"] if "cpu" in attrs else cpu_model(),  # lscpu only when not recorded
               "hardware": attrs["hardware"] if "hardware" in attrs else hardware(),
               "command": attrs.get("command", command), "base": space.base,
               "fixed": space.fixed, "importances": importances, "importance_evaluator": ev_name, "notes": notes,
               "best": best, "files": [f for f in LIGHT_FILES if f != "results.md" and (out / f).is_file()]}
    table = markdown_table(rows, metric)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    text = render_markdown(summary, table)
    (out / "results.md").write_text(text)
    if report_dir:
        dest = Path(report_dir)
        dest.mkdir(parents=True, exist_ok=True)
        for f in LIGHT_FILES:
            if (out / f).is_file():
                shutil.copy2(out / f, dest / f)
    if readme:
        where = Path(report_dir) if report_dir else out
        prefix = Path(os.path.relpath(where.resolve(), Path(readme).resolve().parent)).as_posix() + "/"
        update_readme(readme, render_markdown(summary, table, prefix))
    summary["text"] = text
    return summary

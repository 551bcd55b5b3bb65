"""Honest evaluation: one command computes every published number, with the settings that produced it.

    python -m vae_hub.evaluate --models pretrained/ --dataset ylecun/mnist --out eval \\
        [--quick] [--update-readme docs/evaluation.md] [--no-write-cards]

Writes OUT/metrics.json (every metric, its settings, seeds and sample counts; for Gaussian latents also MIG,
SAP, DCI and the correlation matrix against the measured handwriting factors of the test digits), OUT/results.md (the
Markdown tables, also pasted between ``<!-- results:start -->`` and ``<!-- results:end -->`` of each
``--update-readme`` file) and OUT/figures/<variant>/*.png. Unless ``--no-write-cards``, each model
folder gets its own metrics.json and a re-rendered model card carrying the same numbers.

What is computed, and how (the protocol), is ``vae_hub.evaluation.protocol``; the tables, cards and the docs' results
block (the report) are ``vae_hub.evaluation.report``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from vae_hub.cli import hardware, start
from vae_hub.data.mnist import DEFAULT_DATASET, load_split, shown_dataset
from vae_hub.evaluation.classifier import FOLDER_NAME as CLASSIFIER_FOLDER
from vae_hub.evaluation.classifier import load_classifier
from vae_hub.evaluation.protocol import QUICK, Settings, evaluate_model, prepare
from vae_hub.evaluation.report import (
    ANCHORS,
    MARK_END,
    MARK_START,
    PYTORCH_EXAMPLES,
    render_markdown,
    rounded,
    training_summary,
    update_markdown,
    write_model_metrics,
)
from vae_hub.hub import density
from vae_hub.hub.folders import model_folders
from vae_hub.hub.repo import load

__all__ = ["MARK_END", "MARK_START", "Settings", "main", "parse_args", "run", "settings_from_args", "update_markdown"]


# ---------------------------------------------------------------------------- driver
def merged(path: Path, new: dict) -> dict:
    """The report at ``path`` with the newly evaluated models replacing or joining its rows: re-evaluating one
    retrained model keeps the others' numbers. Each update is recorded beside the original command."""
    if not path.is_file():
        return new
    old = json.loads(path.read_text())
    update = {k: new[k] for k in ("command", "hardware", "wall_seconds")} | {"models": list(new["models"])}
    return {**old, "updates": [*old.get("updates", []), update], "models": {**old["models"], **new["models"]}}


def check_mergeable(path: Path, settings: Settings, dataset: str) -> None:
    """Before any work: rows from another protocol or dataset do not belong in the table at ``path``."""
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    new = rounded(asdict(settings))
    diff = sorted(k for k in new if old.get("settings", {}).get(k) != new[k])
    if diff or old.get("dataset") != dataset:
        raise ValueError(f"{path}: evaluated with other settings or data ({', '.join(diff) or 'dataset'} differ); "
                         "evaluate every model again instead of --merge")


def run(models: str | Path, dataset: str, out: str | Path, settings: Settings, *, classifier: str | Path | None = None,
        variants: list[str] | None = None, write_cards: bool = True, update: list[str] | None = None,
        command: str = "", merge: bool = False, log=print) -> dict:
    t_start = time.perf_counter()
    root, out = Path(models), Path(out)
    folders = model_folders(root)
    if variants:
        folders = [f for f in folders if f.name in variants]
    if not folders:
        raise FileNotFoundError(f"{root}: no complete model folders (config.json, model.safetensors, history.json, README.md)")
    if classifier is None:
        local = (root if not (root / "config.json").is_file() else root.parent) / CLASSIFIER_FOLDER
        classifier = local if local.is_dir() else None
    if merge:
        check_mergeable(out / "metrics.json", settings, shown_dataset(dataset))
    clf = load_classifier(classifier)
    train, test = load_split(dataset, "train"), load_split(dataset, "test")
    torch.manual_seed(settings.seed)
    d = prepare(train, test, clf, settings)
    log(f"evaluating {len(folders)} model(s) on {len(test)} test digits; classifier accuracy "
        f"{100 * d.reference['classifier_test_accuracy']:.2f}%, FD(train, test) {d.reference['fd_train_vs_test']:.2f}")
    shown = shown_dataset(dataset)  # reports name the data as the project sees it, not this machine's path
    header = {"command": command.replace(dataset, shown), "dataset": shown, "n_test": len(test), "n_train": len(train),
              "classifier": str(classifier or "bundled"), "hardware": hardware()}
    results = {}
    for folder in folders:
        model = load(str(folder))
        if density.has_density(model.config) and model.code_density is None:  # written with the cards
            density.fit_model(model, train, settings.seed, folder if write_cards else None, log,
                              density.QUICK_CANDIDATES if settings.quick else density.CANDIDATES)
        dirs = [out / "figures" / model.config.variant] + ([folder / "figures"] if write_cards else [])
        r = evaluate_model(model, d, clf, settings, dirs, log)
        r["n_test"] = len(test)
        r["training"] = training_summary(folder, model.config)
        results[model.config.variant] = r
        if write_cards:
            write_model_metrics(folder, r, settings, header)
    protocol = {
        "binarization": "torch.bernoulli(test_images / 255, generator=torch.Generator().manual_seed(binarize_seed)), "
                        "drawn once for the whole test split",
        "nll_subset": "first nll_images of torch.randperm(n_test, generator=torch.Generator().manual_seed(subset_seed))",
        "nll_subset_indices": d.nll_idx.tolist() if len(d.nll_idx) < len(test) else "all",
    }
    report = {**header, "settings": asdict(settings), "protocol": protocol, "reference": d.reference,
              "anchors": {"pytorch_examples_10_epochs": PYTORCH_EXAMPLES, **{n: v for n, v in ANCHORS}},
              "wall_seconds": time.perf_counter() - t_start, "models": results}
    if merge:
        report = merged(out / "metrics.json", rounded(report))
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(rounded(report), indent=1))
    md = render_markdown(report)
    (out / "results.md").write_text(md)
    for path in update or []:
        update_markdown(path, md)
    log(f"wrote {out / 'metrics.json'}, {out / 'results.md'} in {time.perf_counter() - t_start:.0f}s")
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="pretrained", help="a folder of model folders, or one model folder")
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="Hub id, or local folder/parquet in the ylecun/mnist layout")
    p.add_argument("--out", default="eval", help="metrics.json, results.md and figures/ go here")
    p.add_argument("--quick", action="store_true", help="small settings for smoke tests (numbers are not results)")
    p.add_argument("--classifier", help="classifier folder (default: MODELS/mnist-classifier, else the bundled one)")
    p.add_argument("--variants", nargs="+", help="evaluate only these variants")
    p.add_argument("--nll-k", type=int, help="importance samples per digit (default 5000)")
    p.add_argument("--nll-images", help="digits in the NLL subset, or 'all' for the whole test split (default 100)")
    p.add_argument("--fd-samples", type=int, help="prior samples for the Fréchet distance (default 10000)")
    p.add_argument("--dci-regressor", choices=["gbt", "lasso"],
                   help="DCI importances from gradient-boosted trees (default; 10-90 s per model on a 2-core CPU) or a "
                        "lasso (seconds; --quick uses it)")
    p.add_argument("--seed", type=int, help="seed for posterior/prior samples, probe and colour pairs (default 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)")
    p.add_argument("--merge", action="store_true",
                   help="keep the other models' rows in OUT/metrics.json (same settings): re-evaluate only what changed")
    p.add_argument("--update-readme", action="append", metavar="FILE",
                   help=f"replace the text between {MARK_START} and {MARK_END} in FILE with the tables (repeatable)")
    cards = p.add_mutually_exclusive_group()
    cards.add_argument("--write-cards", dest="write_cards", action="store_true", default=True,
                       help="write each model folder's metrics.json and re-render its card (default)")
    cards.add_argument("--no-write-cards", dest="write_cards", action="store_false")
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    kw = dict(QUICK) if args.quick else {}
    if args.nll_k:
        kw["nll_k"] = args.nll_k
    if args.nll_images:
        kw["nll_images"] = None if args.nll_images == "all" else int(args.nll_images)
    if args.fd_samples:
        kw["fd_samples"] = args.fd_samples
    if args.dci_regressor:
        kw["dci_regressor"] = args.dci_regressor
    if args.seed is not None:
        kw["seed"] = args.seed
    return Settings(**kw)


def main(argv: list[str] | None = None) -> int:
    args, command = start("vae_hub.evaluate", parse_args, argv)
    try:
        run(args.models, args.dataset, args.out, settings_from_args(args), classifier=args.classifier,
            variants=args.variants, write_cards=args.write_cards, update=args.update_readme, command=command,
            merge=args.merge)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

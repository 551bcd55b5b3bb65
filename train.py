"""Train vae-hub variants on MNIST and write (and optionally push) their Hub folders.

    python train.py --list
    python train.py --variants all --dataset ylecun/mnist --out runs
    python train.py --variants all --jobs 2 --half     # two variants at a time, one core each (a 2-core CPU)
    python train.py --variants vae-z20 --epochs 10 --dataset ../shared/mnist
    python train.py --push-only runs --push-to-hub NAMESPACE [--private] [--dry-run]
    python train.py --variants vae-z20 --track [--track-space NS/NAME]   # then: trackio show
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from vae_hub import build, get_config
from vae_hub.checks import check_split_sizes, exit_on_failure
from vae_hub.cli import training_process
from vae_hub.data.mnist import DEFAULT_DATASET, load_split
from vae_hub.hub import density
from vae_hub.hub.folders import is_complete, read_config
from vae_hub.hub.folders import model_folders as complete_model_folders
from vae_hub.hub.repo import push_folder
from vae_hub.hub.save import float16_check, save_model_folder
from vae_hub.model.variants import CANDIDATES, FAST_SET, REGISTRY, TRAINED_APART
from vae_hub.training.loop import CHECKPOINT, fit, resolve_device, run_info
from vae_hub.training.precision import PRECISIONS
from vae_hub.training.tracking import Tracker

QUICK = dict(train=2048, test=512, epochs=1)
LOCK_NAME = ".train.lock"  # in --out, held while training into it


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["all"],
                   help="'all' (the bundled set but iwae-bin, which trains apart: ~45 min) or variant names (see --list)")
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="Hub id, or local folder/parquet in the ylecun/mnist layout")
    p.add_argument("--epochs", type=int, help="override every recipe's epoch count")
    p.add_argument("--out", default="runs", help="one folder per variant is written here")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--precision", choices=PRECISIONS,
                   help="override every recipe's precision: auto (bf16 autocast where measured faster, else fp32), "
                        "fp32, bf16, or fp16 (CUDA only); loss, KL, Adam state and saved weights stay fp32")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK['train']} train / {QUICK['test']} test images, 1 epoch")
    p.add_argument("--jobs", type=int, default=1,
                   help="train this many variants at once, each in its own process with an equal share of the "
                        "threads (default 1). On a small CPU, --jobs equal to the core count is faster overall: these "
                        "models are too small for two cores to share one well. Resume is bit-exact with the same --jobs")
    p.add_argument("--resume", action="store_true", help="continue from each variant's last checkpoint")
    p.add_argument("--fresh", action="store_true", help="discard existing checkpoints and start again")
    p.add_argument("--half", action="store_true", help="store weights as float16 (the bundled set does)")
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--push-to-hub", metavar="NAMESPACE", help="upload each folder to NAMESPACE/vae-hub-<variant>")
    p.add_argument("--push-only", metavar="DIR", help="push already-trained folders (DIR or DIR/<variant>) without training")
    p.add_argument("--private", action="store_true", help="create the Hub repos as private")
    p.add_argument("--dry-run", action="store_true", help="stage and list what would be uploaded; upload nothing")
    p.add_argument("--track", action="store_true", help="log every epoch to trackio (optional dependency; view: trackio show)")
    p.add_argument("--track-project", default="vae-hub", help="trackio project name (default vae-hub)")
    p.add_argument("--track-space", metavar="NS/NAME", help="with --track: sync the trackio project to this Hugging Face Space")
    return p.parse_args(argv)


def select(names: list[str]) -> list[str]:
    if names == ["all"]:  # the fast set: the variants trained apart (iwae-bin) are asked for by name
        return list(FAST_SET)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        print(f"error: unknown variant(s) {', '.join(unknown)}. Valid variants:", file=sys.stderr)
        for n in REGISTRY:
            print(f"  {n}", file=sys.stderr)
        sys.exit(2)
    return names


def headline(description: str) -> str:
    """A description's first clause: up to the first '.', ':' or ';' that ends a word (so 'beta=0.5' and
    'N(0, [[1, 0.4], ...])' stay whole)."""
    return re.split(r"[.:;](?=\s|$)", description, maxsplit=1)[0]


def finished(folder: Path, config) -> bool:
    """A complete folder (card written last) of this exact recipe, with no checkpoint left: nothing to resume."""
    if not is_complete(folder) or (folder / CHECKPOINT).exists():
        return False
    try:
        return read_config(folder) == config
    except (OSError, ValueError):
        return False


def model_folders(root: Path) -> list[Path]:
    found = complete_model_folders(root) if root.is_dir() else []
    if not found:
        sys.exit(f"error: {root} holds no vae-hub model folders (expected DIR/config.json or DIR/<variant>/config.json)")
    return found


def push(folders: list[Path], args: argparse.Namespace) -> None:
    if args.dry_run and not args.push_to_hub:
        args.push_to_hub = "NAMESPACE"
    for folder in folders:
        push_folder(folder, args.push_to_hub, private=args.private, dry_run=args.dry_run)


def recipe(name: str, args: argparse.Namespace):
    """The variant's registry recipe with the command line's overrides (a shortened run shortens its KL warm-up)."""
    config = get_config(name)
    overrides = {}
    if args.epochs or args.quick:
        epochs = args.epochs or QUICK["epochs"]
        overrides = {"epochs": epochs, "kl_warmup_epochs": min(config.kl_warmup_epochs, epochs)}
    if args.precision:
        overrides["precision"] = args.precision
    return dataclasses.replace(config, **overrides)


def splits(args: argparse.Namespace):
    """The train and test splits the run asks for (a cached local dataset loads without decoding again)."""
    try:
        train, test = load_split(args.dataset, "train"), load_split(args.dataset, "test")
        check_split_sizes(args.dataset, train, test)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    if args.quick:
        train, test = train.subset(QUICK["train"]), test.subset(QUICK["test"])
    return train, test


def cost(config) -> float:
    """A recipe's rough training cost: forward FLOPs of one image x epochs x importance samples. Only orders the
    work of --jobs (longest first, so the variants left for the end are short ones)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build(config).train()
    x = torch.zeros(2, config.in_channels, 28, 28)
    y = torch.zeros(2, dtype=torch.long) if config.conditional else None
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, y)
    return counter.get_total_flops() * config.epochs * config.iwae_k


@contextlib.contextmanager
def output_lock(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``root/.train.lock`` while training into ``root``: a second train.py on the same
    --out is refused with a message naming the process that holds it. The lock goes with its process, whatever
    ends it (kill -9 included). No lock where fcntl is missing (Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_NAME, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = " ".join(f.read().split())[:300] or "a process that wrote nothing"
            sys.exit(f"error: {root} is being written by another train.py ({holder}); wait for it to finish, "
                     "or pass another --out")
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                f"train.py {' '.join(sys.argv[1:])}\n")
        f.flush()
        yield


def _worker_start(threads: int, notices: str) -> None:
    global _NOTICES
    _NOTICES = Path(notices)
    training_process()  # before the worker's first parallel operation (vae_hub.cli)
    torch.set_num_threads(threads)
    # numpy's BLAS too (the training codes' density is fitted with it): by default each worker would start one
    # BLAS thread per core, and N workers would crowd N times the cores
    threadpool_limits(threads)
    sys.stdout.reconfigure(line_buffering=True)  # each epoch's line as it happens, not when the worker exits
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the whole group: the parent stops the workers
    # tqdm's default lock is a multiprocessing one, which a stopped worker would leave behind (a resource_tracker
    # warning at exit): the bars of one worker need a thread lock only
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


_WORKER_SPLITS: tuple | None = None  # a worker's (train, test), loaded by its first variant and kept for the rest
_NOTICES: Path | None = None  # where a worker notes the variant it is training (a file named by its pid)


def _train_in_worker(name: str, args: argparse.Namespace) -> tuple[str, float, float, float]:
    global _WORKER_SPLITS
    if _NOTICES is not None:
        (_NOTICES / str(os.getpid())).write_text(name)
    if _WORKER_SPLITS is None:
        _WORKER_SPLITS = splits(args)
    return train_one(recipe(name, args), Path(args.out) / name, *_WORKER_SPLITS, resolve_device(args.device), args)


def _stop_workers(procs: dict, timeout: float = 10.0) -> None:
    """SIGTERM every worker (it dies between two writes: each checkpoint is written atomically), then wait."""
    for p in procs.values():
        if p.is_alive():
            p.terminate()
    for p in procs.values():
        p.join(timeout)
        if p.is_alive():
            p.kill()
            p.join(timeout)


def _died(procs: dict, notices: Path, out: Path) -> str:
    """The one line for a worker that died (kill -9, out of memory): which variant it was training. Called once
    the pool has stopped (and reaped) the other workers."""
    running = {int(f.name): f.read_text() for f in notices.iterdir()}  # the last variant each worker started
    dead = [pid for pid, p in procs.items() if p.exitcode not in (None, 0, -signal.SIGTERM)]
    if not dead:
        return f"error: a training worker stopped unexpectedly; each variant keeps its last checkpoint in {out}: " \
               "rerun with --resume to continue"
    pid = dead[0]
    code = procs[pid].exitcode
    how = f"was killed (signal {-code})" if code is not None and code < 0 else f"exited with status {code}"
    others = sorted(n for p, n in running.items() if p != pid)
    also = f"; {', '.join(others)} stopped with it" if others else ""
    return (f"error: the worker training {running.get(pid, 'a variant')} (pid {pid}) {how}{also}. Each variant keeps "
            f"its last checkpoint in {out}: rerun with --resume to continue")


def _completed(futures: dict, procs: dict, poll: float = 0.25) -> Iterator:
    """``futures`` as they complete, raising BrokenProcessPool as soon as a worker has died. The pool's own
    watch is not enough: CPython 3.11 wakes its manager thread before a submit spawns the worker, so a worker
    spawned by a later submit can die unnoticed, and as_completed would wait for ever. A plain poll, because
    Ctrl+C then lands in time.sleep: inside concurrent.futures.wait it could leave a future's lock held, and the
    pool's shutdown would hang on it."""
    pending = list(futures)
    while pending:
        done = [f for f in pending if f.done()]
        pending = [f for f in pending if f not in done]
        yield from done
        if not done:
            if any(p.exitcode not in (None, 0) for p in procs.values()):
                raise BrokenProcessPool("a worker process died")
            time.sleep(poll)


def train_parallel(names: list[str], args: argparse.Namespace) -> list[tuple[str, float, float, float]]:
    """Train ``names`` in ``args.jobs`` worker processes, longest recipe first; the summary rows in ``names``' order.
    A variant that fails lets the running ones finish (their folders are complete, or resumable) and starts no
    new one; then train.py exits with the first error."""
    threads = max(1, torch.get_num_threads() // args.jobs)
    order = sorted(names, key=lambda n: cost(recipe(n, args)), reverse=True)
    print(f"training {len(names)} variants {args.jobs} at a time, {threads} thread(s) each: {', '.join(order)}",
          flush=True)
    rows, errors = {}, []
    ctx = multiprocessing.get_context("spawn")  # a fork would copy this process's OpenMP state into the workers
    notices = Path(tempfile.mkdtemp(prefix="vae_hub_jobs_"))
    pool = ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_worker_start, initargs=(threads, str(notices)))
    procs: dict = {}
    try:
        futures = {pool.submit(_train_in_worker, n, args): n for n in order}
        procs = dict(pool._processes)  # pid -> Process: spawned by the submits above
        try:
            for future in _completed(futures, procs):
                try:
                    rows[futures[future]] = future.result()
                except CancelledError:  # not started after an earlier failure
                    continue
                except SystemExit as e:  # train_one's one-line errors
                    errors.append(str(e.code))
                    print(e.code, file=sys.stderr, flush=True)
                    for f in futures:
                        f.cancel()
        except BrokenProcessPool:  # a worker killed (kill -9, out of memory): stop the others
            _stop_workers(procs)
            pool.shutdown(wait=True, cancel_futures=True)
            errors.append(_died(procs, notices, Path(args.out)))
    except KeyboardInterrupt:  # SIGINT or SIGTERM (main): stop the workers before this process goes
        _stop_workers(procs or dict(pool._processes or {}))
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(notices, ignore_errors=True)
    if errors:
        sys.exit(errors[0])
    return [rows[n] for n in names]


def train_one(config, folder: Path, train, test, device: torch.device,
              args: argparse.Namespace) -> tuple[str, float, float, float]:
    """Train (or resume) one variant and write its folder; returns (name, s/epoch, test loss, wall s)."""
    t0 = time.perf_counter()
    if args.resume and finished(folder, config):
        hist = json.loads((folder / "history.json").read_text())["epochs"]
        print(f"[{config.variant}] already finished in {folder} (complete folder, no checkpoint): skipped")
        return config.variant, sum(h["seconds"] for h in hist) / len(hist), hist[-1]["test_loss"], 0.0
    if args.fresh:
        shutil.rmtree(folder / "checkpoint", ignore_errors=True)
    try:
        tracker = (Tracker(args.track_project, f"{config.variant}-{time.strftime('%Y%m%d-%H%M%S')}",
                           config.to_dict(), space_id=args.track_space) if args.track else None)
    except ImportError as e:  # trackio is optional: say how to get it
        sys.exit(f"error: {e}")
    with exit_on_failure(config.variant, folder / CHECKPOINT):  # one line on stderr, never a traceback
        model, history, progress = fit(config, train, test, folder, device=device, resume=args.resume,
                                       progress_bar=not args.no_progress, on_epoch=tracker)
        info = run_info(config, history, train, test, args.dataset, device, args.quick)
        if args.half:  # float16 storage must not move the test loss by 0.1 nat or more
            try:
                info["float16_check"] = float16_check(model, test, history[-1]["test_loss"])
            except ValueError as e:
                sys.exit(f"error: {e}; drop --half")
        if density.has_density(config):  # where the data lives, to sample from (vae_hub.hub.density)
            density.fit_model(model, train, config.seed, None, print,
                              density.QUICK_CANDIDATES if args.quick else density.CANDIDATES)
        save_model_folder(model, folder, history, info, test, progress, half=args.half)
    if tracker is not None:
        tracker.finish()
    shutil.rmtree(folder / "checkpoint", ignore_errors=True)  # the run is complete
    return config.variant, info["seconds_total"] / len(history), history[-1]["test_loss"], time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # freed memory kept for the next step and denormal floats flushed to zero (vae_hub.cli): set by the command line,
    # not by fit(), which must not change the allocator or the floats of a program that imports vae_hub
    training_process()
    if args.track_space and not args.track:
        sys.exit("error: --track-space needs --track")
    if args.list:
        for name, c in REGISTRY.items():
            note = " (candidate: not bundled yet)" if name in CANDIDATES else \
                " (bundled; trained apart: not in --variants all)" if name in TRAINED_APART else ""
            print(f"{name:16s} {headline(c.description)}{note}")
        return 0
    if args.push_only:
        push(model_folders(Path(args.push_only)), args)
        return 0
    names = select(args.variants)
    if args.jobs < 1:
        sys.exit(f"error: --jobs {args.jobs}: expected a positive number of variants to train at once")
    device = resolve_device(args.device)
    out_root = Path(args.out)
    stopped_by: list[int] = []

    def stop(signum: int, _frame) -> None:  # SIGTERM ends the run as Ctrl+C does: cleanly, workers too
        stopped_by.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        train, test = splits(args)  # also checks the dataset once, before any worker starts
        with output_lock(out_root):  # one train.py per --out
            if args.jobs > 1 and len(names) > 1:
                args.no_progress = True  # bars from several processes would overwrite each other: one line per epoch
                summary = train_parallel(names, args)
            else:
                summary = [train_one(recipe(name, args), out_root / name, train, test, device, args) for name in names]
    except KeyboardInterrupt:
        sig = stopped_by[0] if stopped_by else signal.SIGINT
        print(f"interrupted ({signal.Signals(sig).name}): training stopped{' with its workers' if args.jobs > 1 else ''}; "
              f"each variant keeps its last checkpoint in {out_root}: rerun with --resume to continue",
              file=sys.stderr, flush=True)
        raise SystemExit(128 + sig) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    folders = [out_root / row[0] for row in summary]
    print(f"\n{'variant':16s} {'s/epoch':>8s} {'test loss':>10s} {'wall s':>8s}")
    for name, spe, loss, wall in summary:
        print(f"{name:16s} {spe:8.1f} {loss:10.2f} {wall:8.1f}")
    if args.push_to_hub or args.dry_run:
        push(folders, args)
    return 0


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    sys.exit(main())

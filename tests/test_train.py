import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import vae_hub
from vae_hub.training.loop import CHECKPOINT, fit

from .conftest import MINI, ROOT


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_loss_falls_over_a_short_run(mini, tmp_path):
    # the classic rate: a 3-epoch run on the mini split still moves a long way from its first epoch
    cfg = vae_hub.get_config("vae-z20", epochs=3, batch_size=64, lr=1e-3, lr_schedule="constant", lr_warmup=0.0,
                             precision="fp32")
    _, history, _ = fit(cfg, *mini, tmp_path, progress_bar=False, log=lambda s: None)
    assert history[-1]["test_loss"] < history[0]["test_loss"] - 20
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert {"test_recon", "test_kl", "seconds", "grad_norms"} <= history[0].keys()


@pytest.mark.parametrize("name,overrides", [
    ("vae-z2", dict(lr_schedule="cosine")),
    ("color-joint", dict(batch_size=100)),
    ("vae-z20", dict(data="binarized")),
    ("vae-z20", dict(precision="bf16")),  # bit-exact for a given precision
    ("conv-vae-bin", dict(precision="bf16", batch_size=100)),
    ("vae-z2", dict(objective="iwae", iwae_k=3, dreg=True, kl_warmup_epochs=2)),
])
def test_resume_after_interruption_is_exact(mini, tmp_path, name, overrides):
    train, test = mini[0].subset(300), mini[1].subset(200)
    # a fixed precision: the registry's 'auto' is measured per run, and under load two fresh runs can choose
    # differently (resuming keeps the checkpoint's choice: test_auto_precision_resumes_as_the_checkpoint_trained)
    cfg = vae_hub.get_config(name, epochs=3, **{"precision": "fp32", **overrides})
    quiet = dict(progress_bar=False, log=lambda s: None)
    full, hist_full, _ = fit(cfg, train, test, tmp_path / "a", **quiet)
    _, hist_cut, _ = fit(cfg, train, test, tmp_path / "b", stop_after_epoch=1, **quiet)
    assert len(hist_cut) == 1
    resumed, hist_res, _ = fit(cfg, train, test, tmp_path / "b", resume=True, **quiet)
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["test_loss"] for h in hist_full] == [h["test_loss"] for h in hist_res]
    precisions = [h["precision"] for h in hist_res]
    assert precisions == [h["precision"] for h in hist_full]  # 'auto' resumes as the checkpoint trained
    assert precisions == [cfg.precision] * 3 if cfg.precision != "auto" else precisions[0] in ("fp32", "bf16")


def test_auto_precision_resumes_as_the_checkpoint_trained(mini, tmp_path, monkeypatch):
    import vae_hub.training.loop as T
    from vae_hub.training.precision import Choice

    train, test = mini[0].subset(200), mini[1].subset(100)
    cfg = vae_hub.get_config("vae-z20", epochs=2, precision="auto")
    quiet = dict(progress_bar=False, log=lambda s: None)
    monkeypatch.setattr(T, "choose", lambda *a: Choice("bf16", "a probe said so"))
    full, _, _ = fit(cfg, train, test, tmp_path / "a", **quiet)
    fit(cfg, train, test, tmp_path / "b", stop_after_epoch=1, **quiet)
    monkeypatch.setattr(T, "choose", lambda *a: Choice("fp32", "the probe now says otherwise"))
    lines = []
    resumed, hist, _ = fit(cfg, train, test, tmp_path / "b", resume=True, progress_bar=False, log=lines.append)
    assert [h["precision"] for h in hist] == ["bf16", "bf16"]
    assert any("precision bf16: as the checkpoint was trained" in line for line in lines)
    a, b = _weights(full), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_checkpoint_needs_resume(mini, tmp_path):
    cfg = vae_hub.get_config("vae-z2", epochs=2)
    train, test = mini[0].subset(128), mini[1].subset(64)
    fit(cfg, train, test, tmp_path, stop_after_epoch=1, progress_bar=False, log=lambda s: None)
    with pytest.raises(FileExistsError, match="--resume"):
        fit(cfg, train, test, tmp_path, progress_bar=False, log=lambda s: None)
    with pytest.raises(ValueError, match="different config"):
        fit(vae_hub.get_config("vae-z2", epochs=5), train, test, tmp_path, resume=True, progress_bar=False)


def test_nan_stops_with_variant_epoch_step_and_keeps_checkpoint(mini, tmp_path, monkeypatch):
    # fp32: an auto precision probe would run training forwards of its own and move the poisoned step
    cfg = vae_hub.get_config("vae-z2", epochs=3, batch_size=64, precision="fp32")
    train, test = mini[0].subset(256), mini[1].subset(64)
    calls = {"n": 0}
    real = vae_hub.VAE.recon_nll

    def poisoned(self, logits, x):
        calls["n"] += 1
        out = real(self, logits, x)
        return out * float("nan") if self.training and calls["n"] > 6 else out

    monkeypatch.setattr(vae_hub.VAE, "recon_nll", poisoned)
    with pytest.raises(FloatingPointError, match=r"vae-z2: non-finite loss .* at epoch 2, step 1"):
        fit(cfg, train, test, tmp_path, progress_bar=False, log=lambda s: None)
    assert (tmp_path / CHECKPOINT).is_file()  # epoch 1 survives


def _cli(*args, **kw):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, **kw)


def test_cli_list_and_unknown_variant():
    r = _cli("--list")
    assert r.returncode == 0 and all(name in r.stdout for name in vae_hub.VARIANTS)
    assert "iwae-bin" in r.stdout and "not in --variants all" in r.stdout  # bundled, trained apart
    r = _cli("--variants", "vae-z2", "nope")
    assert r.returncode == 2 and "unknown variant(s) nope" in r.stderr and "vae-z20" in r.stderr


def test_cli_missing_dataset(tmp_path):
    r = _cli("--variants", "vae-z2", "--dataset", str(tmp_path / "missing"), "--out", str(tmp_path))
    assert r.returncode != 0 and "not found: expected a folder" in r.stderr


def test_cli_quick_writes_the_hub_folder(tmp_path):
    r = _cli("--variants", "vae-z2", "cvae", "--dataset", str(MINI), "--quick", "--out", str(tmp_path),
             "--no-progress", "--dry-run")
    assert r.returncode == 0, r.stderr
    for name in ("vae-z2", "cvae"):
        folder = tmp_path / name
        for f in ("model.safetensors", "config.json", "README.md", "history.json", "figures/samples.png",
                  "figures/reconstructions.png", "figures/loss_curves.png", "figures/progress.png",
                  "encoder.onnx", "decoder.onnx"):
            assert (folder / f).is_file(), f
        assert not (folder / "checkpoint").exists()
        assert json.loads((folder / "config.json").read_text())["variant"] == name
        assert f"NAMESPACE/vae-hub-{name}" in r.stdout  # dry run listed the staged repo
    assert (tmp_path / "vae-z2" / "figures" / "latent_map.png").is_file()
    assert "model.safetensors" in r.stdout and "encoder.onnx" in r.stdout and "decoder.onnx" in r.stdout


def test_cli_jobs_trains_in_parallel_exactly_as_one_at_a_time(tmp_path):
    """--jobs 2 gives each worker half the threads; a sequential run with that many threads writes the same
    weights, so parallel training changes when variants train, never what they learn."""
    import os

    from safetensors.torch import load_file

    # a fixed precision: 'auto' is measured per run and may choose differently in two runs on a loaded machine
    common = ("--variants", "vae-z2", "cvae", "--dataset", str(MINI), "--quick", "--no-progress", "--precision", "fp32")
    par = _cli(*common, "--jobs", "2", "--out", str(tmp_path / "par"), env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert par.returncode == 0, par.stderr
    assert "2 at a time, 1 thread(s) each" in par.stdout
    seq = _cli(*common, "--out", str(tmp_path / "seq"), env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert seq.returncode == 0, seq.stderr
    for name in ("vae-z2", "cvae"):
        a, b = (load_file(tmp_path / run / name / "model.safetensors") for run in ("par", "seq"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
        assert (tmp_path / "par" / name / "README.md").is_file()
    losses = [{line.split()[0]: line.split()[2] for line in r.stdout.splitlines()[-2:]} for r in (par, seq)]
    assert losses[0] == losses[1] and set(losses[0]) == {"vae-z2", "cvae"}  # the closing tables agree


def test_cli_jobs_failure_is_one_line_and_the_other_variants_finish(tmp_path):
    (tmp_path / "cvae" / "checkpoint").mkdir(parents=True)
    (tmp_path / "cvae" / CHECKPOINT).write_bytes(b"")  # a leftover run: training over it needs --resume
    r = _cli("--variants", "vae-z2", "cvae", "--dataset", str(MINI), "--quick", "--jobs", "2", "--out", str(tmp_path))
    assert r.returncode == 1 and "--resume" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "vae-z2" / "README.md").is_file()  # the variant that could train, did
    assert _cli("--variants", "vae-z2", "--jobs", "0").stderr.strip().endswith("expected a positive number of "
                                                                              "variants to train at once")


def test_scratch_model_inside_figures(tmp_path):
    from vae_hub.training.figures import write_inside_figures

    m = vae_hub.build("scratch-conv-vae").eval()
    history = [{"epoch": e, "grad_norms": {"features.0.weight": 1.0 / e, "enc_fc.0.weight": 2.0}} for e in (1, 2)]
    write_inside_figures(m, tmp_path, torch.rand(1, 1, 28, 28), history)
    assert {p.name for p in tmp_path.glob("*.png")} == {"filters.png", "feature_maps.png", "grad_norms.png"}


_KILLED_DURING_SAVE = """
import os, signal, sys
import vae_hub.hub.save
real = vae_hub.hub.save.export_folder
def killed(folder, **kw):  # weights, config, history and figures are written; the graphs and the card are not
    os.kill(os.getpid(), signal.SIGKILL)
vae_hub.hub.save.export_folder = killed
sys.argv = ["train.py", *{args!r}]
import runpy
runpy.run_path({train!r}, run_name="__main__")
"""


def test_kill_during_the_final_save_leaves_an_unfinished_folder_that_resume_completes(tmp_path):
    from vae_hub.hub.folders import model_folders

    args = ["--variants", "vae-z2", "--dataset", str(MINI), "--quick", "--out", str(tmp_path), "--no-progress"]
    script = _KILLED_DURING_SAVE.format(root=str(ROOT), args=args, train=str(ROOT / "train.py"))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == -9, r.stderr
    folder = tmp_path / "vae-z2"
    assert (folder / "model.safetensors").is_file() and (folder / "history.json").is_file()
    assert not (folder / "README.md").exists()  # no placeholder card: the folder does not look finished
    assert (folder / CHECKPOINT).is_file()
    assert model_folders(tmp_path) == []
    r = _cli("--push-only", str(tmp_path), "--dry-run")
    assert r.returncode != 0 and "holds no vae-hub model folders" in r.stderr

    r = _cli(*args, "--resume")
    assert r.returncode == 0, r.stderr
    assert "resuming after epoch 1 of 1" in r.stdout
    assert model_folders(tmp_path) == [folder] and not (folder / "checkpoint").exists()
    assert {"encoder.onnx", "decoder.onnx", "README.md"} <= {p.name for p in folder.iterdir()}

    weights = (folder / "model.safetensors").read_bytes()
    r = _cli(*args, "--resume")
    assert r.returncode == 0, r.stderr
    assert "[vae-z2] already finished" in r.stdout and "skipped" in r.stdout
    assert "epoch 1/1" not in r.stdout and (folder / "model.safetensors").read_bytes() == weights
    r = _cli(*args, "--resume", "--epochs", "2")  # another recipe: not the finished run, so it trains
    assert r.returncode == 0, r.stderr
    assert "already finished" not in r.stdout and "epoch 2/2" in r.stdout


def test_list_shows_whole_first_clauses():
    r = _cli("--list")
    lines = dict(line.split(maxsplit=1) for line in r.stdout.splitlines())
    assert lines["beta-vae-b0.5"] == "beta-VAE with beta=0.5"
    assert lines["vae-z2-corr"].endswith("N(0, [[1, 0.4], [0.4, 0.5]])")


def test_lr_warmup_then_linear_decay():
    from vae_hub.training.loop import lr_at

    c = vae_hub.get_config("vae-z2", lr=0.01, lr_schedule="linear", lr_warmup=0.1)
    rates = [lr_at(c, s, 100) for s in range(101)]
    assert rates[0] == pytest.approx(0.001) and rates[9] == pytest.approx(0.01)  # 10 warm-up steps rise to lr
    assert rates[10] == pytest.approx(0.01) and rates[55] == pytest.approx(0.005) and rates[100] == 0.0
    assert all(a <= b for a, b in zip(rates[:10], rates[1:10])) and all(a >= b for a, b in zip(rates[10:], rates[11:]))
    for total in (1, 2, 3, 7, 1410):  # never above lr, whatever the run's length (a 2-step run warms up over 0.2)
        assert max(lr_at(c, s, total) for s in range(total + 1)) <= c.lr


def test_cosine_without_warmup_is_the_original_schedule():
    import math

    from vae_hub.training.loop import lr_at

    c = vae_hub.get_config("iwae-bin")  # trained on this formula: it must not move by a bit
    assert [lr_at(c, s, 937) for s in range(940)] == [c.lr * 0.5 * (1 + math.cos(math.pi * min(s, 937) / 937))
                                                       for s in range(940)]


# ---------------------------------------------------------------------------- stopping --jobs, and one run per --out
def _children(pid: int) -> set[int]:
    """The live child processes of pid (Linux /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _snapshot(root: Path) -> dict:
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}


def _kill_group(proc: subprocess.Popen) -> None:
    """Whatever the test saw, leave no process of the run behind (its own session: its process group)."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _as_from_a_terminal() -> None:
    """In the child, before exec: SIGINT and SIGTERM as a terminal would hand them to train.py. This pytest process
    may hold them ignored or blocked after other tests' libraries (both are inherited), and a child started so would
    never see the Ctrl+C these tests send."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _jobs_run(tmp_path: Path, variants: tuple[str, ...]):
    """train.py --jobs 2 on the mini set, long enough to be stopped while both workers train; returns the process,
    its stdout lines as they come, and its workers' pids once both have finished an epoch."""
    import threading

    cmd = [sys.executable, str(ROOT / "train.py"), "--variants", *variants, "--dataset", str(MINI), "--quick",
           "--epochs", "500", "--jobs", "2", "--out", str(tmp_path / "runs"), "--precision", "fp32"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_as_from_a_terminal)
    lines: list[str] = []
    proc.errors = []  # stderr as it comes: read in a thread, so that workers left running block nothing
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    threading.Thread(target=lambda: proc.errors.extend(proc.stderr), daemon=True).start()
    t0 = time.time()
    while time.time() - t0 < 120:
        started = {line.split("]")[0] for line in list(lines) if " epoch 2/500" in line}
        if len(started) == 2:  # the workers, not multiprocessing's resource tracker
            workers = {p for p in _children(proc.pid) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()}
            return proc, lines, workers
        assert proc.poll() is None, proc.errors
        time.sleep(0.2)
    _kill_group(proc)  # its workers too: killing train.py alone left them training, orphaned
    pytest.fail(f"the workers did not start: {lines[-5:]}")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads child processes from /proc")
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_stopping_a_jobs_run_stops_its_workers_and_keeps_their_checkpoints(tmp_path, request, how):
    """SIGTERM to train.py, or Ctrl+C (SIGINT to its process group): the workers stop too (they went on training
    and started the queued variants), the last checkpoints stay, and one line says how to continue."""
    import signal

    proc, lines, workers = _jobs_run(tmp_path, ("vae-z2", "vae-z3", "vae-z2-corr"))
    request.addfinalizer(lambda: _kill_group(proc))
    assert len(workers) == 2, workers
    if how == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    rc = proc.wait(60)
    time.sleep(0.5)
    err = "".join(proc.errors)
    assert rc == 128 + getattr(signal, how), (rc, err)
    assert err.strip().count("\n") == 0 and "Traceback" not in err and "--resume" in err and how in err, err
    assert not [p for p in workers if _alive(p)], "workers still running after train.py exited"
    runs = tmp_path / "runs"
    before = _snapshot(runs)
    time.sleep(1.5)
    assert _snapshot(runs) == before, "files still being written"
    started = {line.split("]")[0].lstrip("[") for line in lines if " epoch 1/500" in line}
    assert len(started) == 2 and all((runs / v / CHECKPOINT).is_file() for v in started)
    assert not (runs / ({"vae-z2", "vae-z3", "vae-z2-corr"} - started).pop()).exists(), "the queued variant never starts"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads child processes from /proc")
def test_a_killed_worker_is_one_line_naming_its_variant(tmp_path, request):
    import signal

    proc, lines, workers = _jobs_run(tmp_path, ("vae-z2", "vae-z3"))
    request.addfinalizer(lambda: _kill_group(proc))
    assert len(workers) == 2, workers
    os.kill(sorted(workers)[-1], signal.SIGKILL)
    rc = proc.wait(60)
    time.sleep(0.5)
    err = "".join(proc.errors).strip()
    assert rc == 1 and err.count("\n") == 0 and "Traceback" not in err, err
    assert "was killed (signal 9)" in err and "--resume" in err, err
    assert any(f"training {v} " in err for v in ("vae-z2", "vae-z3")) and "stopped with it" in err, err
    assert not [p for p in workers if _alive(p)]


def test_a_second_run_on_the_same_out_is_refused(tmp_path):
    import fcntl

    out = tmp_path / "runs"
    out.mkdir()
    with open(out / ".train.lock", "a+") as held:  # another train.py, as far as the lock says
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242 on elsewhere, since 2026-01-01 00:00:00: train.py --variants all\n")
        held.flush()
        r = _cli("--variants", "vae-z2", "--dataset", str(MINI), "--quick", "--out", str(out), "--no-progress")
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "is being written by another train.py (pid 4242" in r.stderr and "--out" in r.stderr, r.stderr
    assert not (out / "vae-z2").exists()
    r = _cli("--variants", "vae-z2", "--dataset", str(MINI), "--quick", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr  # released when its holder goes

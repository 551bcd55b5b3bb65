"""Push and pull through huggingface_hub's real HTTP client, end to end.

``tests/hub_server.py`` (a small in-memory Hub on 127.0.0.1) stands in for the Hub; every step runs in its own
process with ``HF_ENDPOINT`` pointing at it and an empty Hugging Face cache, as a user's would:

1. ``train.py --push-only pretrained --push-to-hub testns`` (create_repo, upload_folder);
2. ``vae_hub.load("testns/vae-hub-vae-z20")`` and ``ModelCard.load`` (snapshot_download, hf_hub_download);
3. ``space/app.py`` with ``VAE_HUB_NAMESPACE=testns``, asked through gradio_client.

Checked: each repo holds exactly the staged files, the weights that come back equal the pushed ones bit for bit,
the model card's metadata parses and names the repo, the Space serves every variant from the fake Hub and
computes with the pushed weights. Not covered (see hub_server.py): LFS and Xet transfers, authentication and
private repos, branches and pull requests, the real Hub's server-side checks beyond the card's YAML.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import safetensors.torch
import torch

import vae_hub
from vae_hub.hub.repo import card_metrics, model_folders, repo_id_for, staged_files

from .conftest import ROOT
from .hub_server import FakeHub
from .test_space import _free_port, _stop

NAMESPACE = "testns"


@pytest.fixture(scope="module")
def hub():
    with FakeHub() as h:
        yield h


def hub_env(hub: FakeHub, home: Path, **extra: str) -> dict[str, str]:
    """A user's environment pointed at the fake Hub, with an empty Hugging Face cache of its own; no bundled
    pretrained/ folder to fall back on."""
    drop = ("VAE_HUB_WEIGHTS", "VAE_HUB_NAMESPACE", "SPACE_ID", "HF_HUB_CACHE", "HF_XET_CACHE", "HF_ASSETS_CACHE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(home / "hf"), HF_TOKEN="dummy-token",
               HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_TELEMETRY="1", VAE_HUB_CACHE=str(home / "vae_hub"),
               VAE_HUB_PRETRAINED=str(home / "no-bundled-set"), PYTHONPATH=str(ROOT),
               GRADIO_ANALYTICS_ENABLED="False", **extra)
    return env


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> str:
    r = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def pushed(hub, tmp_path_factory) -> dict[str, Path]:
    """Every bundled variant pushed with train.py: {repo id: local folder}."""
    home = tmp_path_factory.mktemp("pusher")
    out = run(["train.py", "--push-only", "pretrained", "--push-to-hub", NAMESPACE], hub_env(hub, home), ROOT)
    folders = {repo_id_for(json.loads((f / "config.json").read_text())["variant"], NAMESPACE): f
               for f in model_folders(ROOT / "pretrained")}
    assert len(folders) >= 2 and all(repo in out for repo in folders), out[-2000:]
    return folders


def test_push_uploads_each_folder_as_regular_files(hub, pushed):
    assert set(hub.repos) == set(pushed)
    for repo_id, folder in pushed.items():
        _, files = hub.repos[repo_id].snapshot("main")
        assert sorted(files) == [rel for rel, _ in staged_files(folder)], repo_id
        for rel, data in files.items():
            if rel != "README.md":  # the card is re-rendered for this repo id
                assert data == (folder / rel).read_bytes(), f"{repo_id}/{rel} differs from the pushed file"
        calls = [(m, p) for m, p, _ in hub.requests]
        assert ("POST", f"/api/models/{repo_id}/preupload/main") in calls
        assert ("POST", f"/api/models/{repo_id}/commit/main") in calls
    assert all(status < 400 for m, _, status in hub.requests if m == "POST"), hub.requests
    assert not hub.unknown, f"the client called routes the fake Hub does not serve: {hub.unknown}"


PULL = """
import json, sys
from huggingface_hub import ModelCard, scan_cache_dir
import safetensors.torch, vae_hub
model = vae_hub.load(sys.argv[1])
safetensors.torch.save_file(model.state_dict(), "loaded.safetensors")
card = ModelCard.load(sys.argv[1])
cached = {r.repo_id: sorted(f.file_name for rev in r.revisions for f in rev.files) for r in scan_cache_dir().repos}
metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
print(json.dumps({"variant": model.config.variant, "card": card.data.to_dict(), "model_name": card.data.model_name,
                  "metrics": metrics, "cached": cached}))
"""


def test_load_in_a_clean_cache_gives_the_pushed_weights_and_card(hub, pushed, tmp_path):
    repo_id = repo_id_for("vae-z20", NAMESPACE)
    folder = pushed[repo_id]
    n_before = len(hub.requests)
    out = json.loads(run(["-c", PULL, repo_id], hub_env(hub, tmp_path), tmp_path).splitlines()[-1])
    assert out["variant"] == "vae-z20"
    assert set(out["cached"]) == {repo_id}, "the fresh cache holds what was just downloaded, nothing else"
    assert {"config.json", "model.safetensors", "README.md"} <= set(out["cached"][repo_id])
    fetched = {p.rsplit("/", 1)[-1] for m, p, s in hub.requests[n_before:] if m == "GET" and "/resolve/" in p and s == 200}
    assert {"config.json", "model.safetensors", "README.md"} <= fetched, "downloaded from the fake Hub"

    pushed_w = safetensors.torch.load_file(str(folder / "model.safetensors"))
    loaded_w = safetensors.torch.load_file(str(tmp_path / "loaded.safetensors"))
    assert pushed_w.keys() == loaded_w.keys()
    for k, w in pushed_w.items():  # stored as float16, loaded as float32: the same values exactly
        assert torch.equal(loaded_w[k], w.to(loaded_w[k].dtype)), k

    card = out["card"]
    assert out["model_name"] == repo_id and card["library_name"] == "vae-hub"
    assert card["datasets"] == ["ylecun/mnist"] and "mnist" in card["tags"] and card["license"]
    assert out["metrics"] == {key: round(value, 4) for key, _, value in card_metrics(folder)}


@pytest.mark.parametrize("no_xet", ["0", "1"], ids=["pipelined-upload", "create_commit"])
def test_pushing_again_changes_nothing(hub, pushed, tmp_path, no_xet):
    """Re-running a push: the repo exists (409, accepted) and unchanged files are not committed again. With
    HF_HUB_DISABLE_XET=1 (or without hf_xet) upload_folder takes its other path, one create_commit."""
    repo_id = repo_id_for("vae-z20", NAMESPACE)
    head, n_before = hub.repos[repo_id].main, len(hub.requests)
    run(["train.py", "--push-only", "pretrained/vae-z20", "--push-to-hub", NAMESPACE],
        hub_env(hub, tmp_path, HF_HUB_DISABLE_XET=no_xet), ROOT)
    calls = hub.requests[n_before:]
    assert ("POST", "/api/repos/create", 409) in calls
    assert not [c for c in calls if "/commit/" in c[1]] and hub.repos[repo_id].main == head, calls


def test_a_missing_repo_is_a_clear_error(hub, pushed, tmp_path):
    r = subprocess.run([sys.executable, "-c", "import vae_hub; vae_hub.load('testns/vae-hub-nothing')"], cwd=tmp_path,
                       env=hub_env(hub, tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode != 0, r.stdout
    assert "testns/vae-hub-nothing" in r.stderr and "not found" in r.stderr.lower(), r.stderr[-2000:]


def test_space_serves_the_pushed_weights(hub, pushed, tmp_path):
    from gradio_client import Client

    port = _free_port()
    env = hub_env(hub, tmp_path, VAE_HUB_NAMESPACE=NAMESPACE, GRADIO_SERVER_NAME="127.0.0.1",
                  GRADIO_SERVER_PORT=str(port), PYTHONUNBUFFERED="1")
    n_before = len(hub.requests)
    log = tmp_path / "space.log"
    with log.open("w") as f:
        proc = subprocess.Popen([sys.executable, str(ROOT / "space" / "app.py")], cwd=tmp_path, env=env, stdout=f,
                                stderr=subprocess.STDOUT)
    try:
        url, t0 = f"http://127.0.0.1:{port}/", time.time()
        while proc.poll() is None and time.time() - t0 < 180:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        assert proc.poll() is None, f"the Space exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
        client = Client(url, verbose=False)
        status = client.predict(api_name="/status")
        variants = [r.removeprefix(f"{NAMESPACE}/vae-hub-") for r in pushed]
        assert (status["source"], status["location"]) == ("hub", NAMESPACE)
        assert sorted(status["loaded"]) == sorted(variants) and not status["missing"], status

        from vae_space.entries import TestDigits

        x = TestDigits.load().x[:1]
        reply = client.predict(x.flatten().tolist(), "vae-z20", api_name="/encode_array")
        with torch.inference_mode():
            mean = vae_hub.load(pushed[repo_id_for("vae-z20", NAMESPACE)]).encode(x).mean[0]
        torch.testing.assert_close(torch.tensor(reply["mean"]), mean, rtol=1e-5, atol=1e-5)
        download = client.predict("vae-z20", api_name="/model_card")[3]
        assert f"{NAMESPACE}/vae-hub-vae-z20" in download
    finally:
        _stop(proc)
    fetched = {p for m, p, s in hub.requests[n_before:] if m == "GET" and s == 200}
    snapshots = tmp_path / "hf" / "hub"
    for repo_id, folder in pushed.items():
        assert any(p.startswith(f"/{repo_id}/resolve/") and p.endswith("/model.safetensors") for p in fetched), repo_id
        [cached] = snapshots.glob(f"models--{repo_id.replace('/', '--')}/snapshots/*/model.safetensors")
        a, b = (safetensors.torch.load_file(str(p)) for p in (cached, folder / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"{repo_id}: weights differ"
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


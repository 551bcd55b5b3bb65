"""Precision choice and mixed-precision training: what stays float32, and the choices' reasons."""

import pytest
import torch

import vae_hub
from vae_hub.training import precision as P
from vae_hub.training.loop import fit

QUIET = dict(progress_bar=False, log=lambda s: None)


def test_cpu_flags_and_bf16_units(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n")
    assert P.cpu_bf16_units(P.cpu_flags(info)) == ["avx512_bf16"]
    assert P.cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize("flags,speeds,want", [
    (set(), None, "fp32"),  # no bf16 units: no probe at all
    ({"avx512_bf16"}, (100.0, 300.0), "bf16"),
    ({"amx_bf16"}, (100.0, 105.0), "fp32"),  # not a clear win
])
def test_auto_on_cpu(monkeypatch, flags, speeds, want):
    monkeypatch.setattr(P, "cpu_flags", lambda: flags)
    monkeypatch.setattr(P, "probe", lambda model, batch, device: speeds)
    choice = P.choose("auto", "cpu", vae_hub.build("vae-z2"), 64)
    assert choice.name == want and choice.reason
    if speeds:
        assert "images/s" in choice.reason and "batch 64" in choice.reason


def test_explicit_choices_and_errors():
    assert P.choose("bf16", "cpu") == P.Choice("bf16", "set by the recipe or --precision")
    assert P.choose("fp32", "cpu").dtype is None and P.choose("bf16", "cpu").dtype is torch.bfloat16
    with pytest.raises(ValueError, match="'fp16' needs a CUDA device"):
        P.choose("fp16", "cpu")
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        P.choose("half", "cpu")
    scratch = vae_hub.build("scratch-conv-vae")
    assert P.choose("auto", "cpu", scratch).name == "fp32"
    with pytest.raises(ValueError, match="scratch kit trains in fp32 only"):
        P.choose("bf16", "cpu", scratch)
    with pytest.raises(ValueError, match="scratch kit"):
        vae_hub.get_config("scratch-conv-vae", precision="bf16")


def test_probe_leaves_the_model_and_the_random_stream_alone():
    model = vae_hub.build("cvae", hidden=[32, 16])  # conditional: the probe passes labels
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(5)
    f32, b16 = P.probe(model, 16, torch.device("cpu"), rounds=1, seconds=0.0)
    after_probe = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after_probe, torch.rand(3))
    assert f32 > 0 and b16 > 0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_bf16_training_keeps_loss_adam_and_weights_float32(mini, tmp_path):
    cfg = vae_hub.get_config("conv-vae-bin", epochs=1, precision="bf16")
    train, test = mini[0].subset(128), mini[1].subset(64)
    model, history, _ = fit(cfg, train, test, tmp_path, stop_after_epoch=1, **QUIET)
    assert history[0]["precision"] == "bf16"
    assert all(v.dtype == torch.float32 for v in model.state_dict().values() if v.is_floating_point())
    with P.autocast(P.Choice("bf16", ""), "cpu"):
        out = model.train()(torch.rand(4, 1, 28, 28).round())
    assert {out.loss.dtype, out.kl.dtype, out.recon.dtype, out.posterior.mean.dtype} == {torch.float32}
    from safetensors import safe_open

    with safe_open(str(tmp_path / "checkpoint/last.safetensors"), "pt") as f:  # weights and Adam moments
        dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys() if not k.startswith("progress.")}
    moments = [k for k in dtypes if k.endswith(("exp_avg", "exp_avg_sq"))]
    assert moments and {dtypes[k] for k in moments} == {"F32"}
    assert {v for k, v in dtypes.items() if not k.endswith("num_batches_tracked")} == {"F32"}


def test_fp16_on_cpu_is_a_clear_error(mini, tmp_path):
    cfg = vae_hub.get_config("vae-z2", epochs=1, precision="fp16")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        fit(cfg, mini[0].subset(64), mini[1].subset(32), tmp_path, **QUIET)


def test_older_configs_read_as_fp32_elbo():
    # a recipe written before these fields existed (every registry recipe now sets some of them)
    c = vae_hub.get_config("vae-z2", precision="fp32", lr_warmup=0.0)
    d = c.to_dict()
    for name in ("precision", "objective", "iwae_k", "dreg", "kl_warmup_epochs", "lr_warmup"):
        del d[name]
    back = vae_hub.VAEConfig.from_dict(d)
    assert back == c and (back.precision, back.objective, back.iwae_k, back.lr_warmup) == ("fp32", "elbo", 1, 0.0)


def test_test_pass_runs_in_the_training_precision_but_the_last_in_float32(mini, tmp_path, monkeypatch):
    from vae_hub.training import loop as T

    seen = []
    real = T.evaluate_elbo
    monkeypatch.setattr(T, "evaluate_elbo", lambda model, b, **kw: seen.append(kw["precision"].name) or real(model, b, **kw))
    cfg = vae_hub.get_config("vae-z2", hidden=[32], epochs=3, batch_size=64, precision="bf16")
    test = mini[1].subset(64)
    model, history, _ = fit(cfg, mini[0].subset(128), test, tmp_path, **QUIET)
    assert seen == ["bf16", "bf16", "fp32"]
    final = real(model, T.Batcher(test, cfg, torch.device("cpu")))  # float32 by default: the card's number
    assert history[-1]["test_loss"] == final["loss"]
    bf16 = real(model, T.Batcher(test, cfg, torch.device("cpu")), precision=P.Choice("bf16", ""))
    assert bf16["loss"] != final["loss"] and abs(bf16["loss"] - final["loss"]) < 0.5

"""ONNX export (vae_hub.hub.onnx): onnxruntime agrees with torch for every variant, and the files are what they claim."""

import json
import re
import shutil
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import vae_hub
from vae_hub.hub.onnx import DECODER_FILE, ENCODER_FILE, export_folder, export_onnx, io_names, main, weights_sha256
from vae_hub.hub.repo import bundled_dir, render_card, save_model_folder, staged_files
from vae_hub.model.distributions import Joint, OneHotGumbel
from vae_hub.model.vae import fast_layout

TOL = 1e-4
CLEAN_OPS = {"Conv", "ConvTranspose", "Gemm", "Relu", "Flatten", "Reshape", "Split", "Mul", "Concat", "Constant",
             "LogSoftmax"}
HALF_OPS = CLEAN_OPS | {"Cast"}  # float16 storage: each weight cast back to float32 at the graph's entrance
BUNDLED_Z20 = bundled_dir() / "vae-z20"


def _random_model(name: str) -> vae_hub.VAE:
    """A fresh model as vae_hub.load would hand it over (eval mode, channels-last convolutions), with random batch-norm
    statistics and affine parameters: fresh ones are the identity and would hide a wrong fold."""
    torch.manual_seed(0)
    model = vae_hub.build(name)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "running_var"):
                for t, scale, shift in ((m.running_mean, 0.2, 0.0), (m.running_var, 1.0, 0.5), (m.weight, 1.0, 0.5),
                                        (m.bias, 0.2, 0.0)):
                    t.copy_(torch.rand(t.shape, generator=g) * scale + shift)
    if fast_layout(model.config):
        model = model.to(memory_format=torch.channels_last)
    return model.eval()


def _session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _torch_outputs(model: vae_hub.VAE, x: torch.Tensor, labels: torch.Tensor | None, z: torch.Tensor) -> dict:
    """What each graph should return, from the public torch API: the posterior's parameters and decode(z)."""
    with torch.no_grad():
        post = model.encode(x, labels)
        gauss = post.continuous if isinstance(post, Joint) else post
        cat = post.discrete if isinstance(post, Joint) else post
        enc = {}
        if model.config.z_dim:
            enc["mean"], enc["log_sigma"] = gauss.base_dist.loc, gauss.base_dist.scale.log()
        if model.config.n_cat:
            assert isinstance(cat, OneHotGumbel)
            enc["logits"] = cat.logits
        return {"encoder": enc, "decoder": {"logits": model.decode(z, labels)}}


def _feeds(c, first: torch.Tensor, labels: torch.Tensor | None, name: str) -> dict:
    feeds = {name: first.contiguous().numpy()}
    if c.conditional:
        feeds["y"] = torch.nn.functional.one_hot(labels, 10).float().numpy()
    return feeds


def _check_against_torch(model, paths, batches=(1, 7), inputs=None) -> None:
    c = model.config
    sessions = {g: _session(p) for g, p in paths.items()}
    for b in batches:
        x = inputs[:b] if inputs is not None else torch.rand(b, c.in_channels, 28, 28)
        labels = torch.arange(b) % 10 if c.conditional else None
        z = model.prior.sample((b,))
        want = _torch_outputs(model, x, labels, z)
        for graph, first, name in (("encoder", x, "x"), ("decoder", z, "z")):
            sess = sessions[graph]
            got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, _feeds(c, first, labels, name))))
            assert got.keys() == want[graph].keys()
            for key, w in want[graph].items():
                np.testing.assert_allclose(got[key], w.numpy(), rtol=0, atol=TOL, err_msg=f"{c.variant} {graph} {key} B={b}")


@pytest.mark.parametrize("name", list(vae_hub.VARIANTS))
def test_onnxruntime_matches_torch(name, tmp_path):
    model = _random_model(name)
    c = model.config
    sha = weights_sha256(model)
    rng = torch.random.get_rng_state()
    paths = export_onnx(model, tmp_path / "out")
    # the model is left as it was, and so is the caller's random stream
    assert torch.equal(rng, torch.random.get_rng_state())
    assert not model.training and weights_sha256(model) == sha
    if fast_layout(c):
        assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    # exactly the two self-contained files: no external .data, no temporary files left behind
    assert paths == {"encoder": tmp_path / "out" / ENCODER_FILE, "decoder": tmp_path / "out" / DECODER_FILE}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([DECODER_FILE, ENCODER_FILE])
    for graph, path in paths.items():
        proto = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(proto, full_check=True)
        assert not any(onnx.external_data_helper.uses_external_data(t) for t in proto.graph.initializer)
        assert [(o.domain, o.version) for o in proto.opset_import] == [("", 18)]
        ops = {n.op_type for n in proto.graph.node}
        assert ops <= CLEAN_OPS, f"{graph}: unexpected ops {ops - CLEAN_OPS}"  # e.g. the scratch kit's gathers
        inputs, outputs = io_names(c)[graph]
        assert [i.name for i in proto.graph.input] == inputs and [o.name for o in proto.graph.output] == outputs
        for v in [*proto.graph.input, *proto.graph.output]:
            assert v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
            dims = v.type.tensor_type.shape.dim
            assert dims[0].dim_param == "batch" and all(d.dim_value > 0 for d in dims[1:]), (graph, v.name)
        meta = {p.key: p.value for p in proto.metadata_props}
        assert meta["graph"] == graph and meta["variant"] == name and meta["latent"] == c.latent
        assert (meta["z_dim"], meta["n_cat"], meta["k_cat"], meta["in_channels"]) == tuple(
            str(v) for v in (c.z_dim, c.n_cat, c.k_cat, c.in_channels))
        assert meta["conditional"] == json.dumps(c.conditional) and meta["weights_sha256"] == sha
        assert meta["inputs"] == ",".join(inputs) and meta["outputs"] == ",".join(outputs)
        assert meta["vae_hub_version"] == vae_hub.__version__
    _check_against_torch(model, paths)


@pytest.mark.parametrize("name", list(vae_hub.VARIANTS))
def test_float16_storage_matches_torch_on_the_same_weights(name, tmp_path):
    """The Space's graphs: weights stored as float16 (about half the bytes). Against torch running the same
    float16-rounded weights (what a float16-stored model is) the tolerance is the float32 graph's, 1e-4, at batch 1
    and 7; and for such weights the graph computes exactly what the float32 graph does."""
    model = _random_model(name)  # float32 weights: rounded to float16 by the export, and its metadata says so
    paths = export_onnx(model, tmp_path / "half", half=True)
    rounded = _random_model(name)
    with torch.no_grad():
        for t in rounded.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    _check_against_torch(rounded, paths)
    full = export_onnx(rounded, tmp_path / "full")
    for graph, path in paths.items():
        proto = onnx.load(str(path))
        assert {n.op_type for n in proto.graph.node} <= HALF_OPS
        halves = sum(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
        assert halves and path.stat().st_size < 0.6 * full[graph].stat().st_size, "most weights stored as float16"
        meta = {p.key: p.value for p in proto.metadata_props}
        assert meta["weights_storage"] == "float16" and meta["float16_exact"] == "false"
        assert meta["weights_sha256"] == weights_sha256(model)  # names the model it came from
        # same weights: the float16-storage graph gives the float32 graph's outputs exactly
        inputs = _example_feeds(rounded.config, graph)
        a = _session(path).run(None, inputs)
        b = _session(full[graph]).run(None, inputs)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    again = {p.key: p.value for p in onnx.load(str(export_onnx(rounded, tmp_path / "h2", half=True)["encoder"])).metadata_props}
    assert again["float16_exact"] == "true"


def _example_feeds(c, graph: str) -> dict:
    g = torch.Generator().manual_seed(3)
    first = (torch.rand(5, c.in_channels, 28, 28, generator=g) if graph == "encoder"
             else torch.randn(5, c.latent_size, generator=g))
    return _feeds(c, first, torch.arange(5) % 10 if c.conditional else None, "x" if graph == "encoder" else "z")


def test_export_is_quiet(tmp_path, capfd):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_onnx(_random_model("conv-vae-z20"), tmp_path)
    assert not [str(w.message) for w in caught]
    out, err = capfd.readouterr()
    assert not out and not err


@pytest.mark.skipif(not (BUNDLED_Z20 / "model.safetensors").is_file(), reason="no bundled pretrained/ set")
def test_bundled_model_on_real_digits(tmp_path, mini):
    model = vae_hub.load(str(BUNDLED_Z20))  # float16 on disk, float32 in memory
    paths = export_onnx(model, tmp_path)
    meta = {p.key: p.value for p in onnx.load(str(paths["encoder"])).metadata_props}
    assert meta["weights_sha256"] == weights_sha256(model)
    digits = mini[1].images[:7].float() / 255
    _check_against_torch(model, paths, inputs=digits)
    assert not any(p.suffix == ".onnx" for p in BUNDLED_Z20.iterdir())  # the bundled set carries none


@pytest.mark.skipif(not (BUNDLED_Z20 / "model.safetensors").is_file(), reason="no bundled pretrained/ set")
def test_cli_exports_a_folder_and_the_card_lists_it(tmp_path, capsys, monkeypatch):
    assert "encoder.onnx" not in render_card(BUNDLED_Z20).text  # no files, no mention: bundled cards stay truthful
    folder = tmp_path / "vae-z20"
    shutil.copytree(BUNDLED_Z20, folder)
    assert main([str(folder)]) == 0
    assert ENCODER_FILE in capsys.readouterr().out
    assert {ENCODER_FILE, DECODER_FILE} <= {rel for rel, _ in staged_files(folder)}  # pushed beside the weights
    _run_card_snippet(folder, monkeypatch)
    assert main([str(tmp_path / "missing")]) == 1
    with pytest.raises(NotADirectoryError):
        export_folder(tmp_path / "missing")


def _run_card_snippet(folder, monkeypatch) -> None:
    """Run the card's onnxruntime snippet in the folder: it must reconstruct as model.reconstruct does."""
    text = render_card(folder).text
    assert "## Run it without PyTorch (ONNX)" in text and f"`{ENCODER_FILE}`" in text
    code = re.search(r"```python\n(import numpy as np, onnxruntime.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 6
    monkeypatch.chdir(folder)
    ns: dict = {}
    exec(code, ns)
    model = vae_hub.load(str(folder))
    c = model.config
    want = model.reconstruct(torch.zeros(1, c.in_channels, 28, 28), torch.tensor([3]) if c.conditional else None)
    np.testing.assert_allclose(ns["image"], want.numpy(), rtol=0, atol=TOL)


@pytest.mark.parametrize("name", ["cvae", "color-gumbel", "color-joint", "scratch-conv-vae"])
def test_save_model_folder_writes_graphs_and_a_working_card_snippet(name, tmp_path, monkeypatch):
    folder = tmp_path / name
    history = [{"epoch": 1, "test_loss": 100.0, "test_recon": 90.0, "test_kl": 10.0}]
    save_model_folder(_random_model(name), folder, history, {"n_train": 1, "seconds_total": 0, "hardware": "test"},
                      half=True)
    # exported from the saved (float16-rounded) weights, so the graphs match what vae_hub.load gives
    meta = {p.key: p.value for p in onnx.load(str(folder / DECODER_FILE)).metadata_props}
    assert meta["weights_sha256"] == weights_sha256(vae_hub.load(str(folder)))
    _run_card_snippet(folder, monkeypatch)

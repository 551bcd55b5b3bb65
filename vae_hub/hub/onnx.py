"""ONNX export: every model as two self-contained graphs with a dynamic batch axis.

- ``encoder.onnx``: ``x`` (B, C, 28, 28) float32 in [0, 1] (and ``y`` (B, 10) one-hot for conditional models) ->
  gaussian latents: ``mean``, ``log_sigma`` (B, z_dim), with sigma = exp(0.5 * logvar) as ``VAE.encode`` has it;
  categorical: ``logits`` (B, n_cat, k_cat), normalised (log-probabilities, as ``encode(x).logits``); joint: all three.
- ``decoder.onnx``: ``z`` (B, latent_size) (and ``y``) -> ``logits`` (B, C, 28, 28), Bernoulli logits.

Each graph carries its weights inline (no external data) and metadata_props describing the model (variant,
latent, sizes, input/output names, a sha256 of the weights to key caches on). ``train.py`` writes both files into
every model folder; existing folders are exported with

    python -m vae_hub.onnx FOLDER...          # a model folder, or a folder of them (e.g. runs/)
    python -m vae_hub.onnx --half FOLDER...   # weights stored as float16: half the bytes

Float16 storage (``half=True``): every weight float16 holds exactly is stored as float16 and cast back to float32 by
a ``Cast`` node at the graph's entrance (onnxruntime folds it into a float32 constant when the session is created),
so every operation still runs in float32. For weights stored as float16 to begin with (``train.py --half``, the
bundled set) the graph computes exactly what the float32 graph computes; the check against torch is the same 1e-4.
A model with float32 weights is rounded to float16 first (a relative change of at most 2^-11 per weight), checked
against torch running the same rounded weights, and says so in its metadata (``float16_exact: false``). Weights
that batch-norm folding makes (the convolutions before a batch norm) are not float16-exact and stay float32.

Exporter: torch.onnx's TorchScript exporter (``dynamo=False``). For these small static feed-forward nets it gives
graphs as small as ``dynamo=True`` does (one node per layer) once batch norm is folded and unflatten written as one
reshape (below), in ~0.05 s per graph instead of 2-3 s (torch 2.13, CPU), and without onnxscript. That matters because
the Space exports every model it serves at start-up and the tests export every variant.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import io
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from vae_hub.cli import denormals_flushed, flush_denormals
from vae_hub.hub.folders import model_folders, read_config, write_atomic
from vae_hub.model.config import VAEConfig
from vae_hub.model.vae import IMAGE_SIZE, VAE

if TYPE_CHECKING:
    import onnx

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
DEFAULT_OPSET = 18  # well inside what onnxruntime-web 1.30 runs (<= 21) and what the TorchScript exporter writes (<= 20)
TOLERANCE = 1e-4  # onnxruntime vs torch, absolute and relative, checked on every export
BATCH = "batch"
_LOCK = threading.Lock()  # the TorchScript exporter keeps global state: one export at a time per process


def io_names(config: VAEConfig) -> dict[str, tuple[list[str], list[str]]]:
    """{"encoder": (input names, output names), "decoder": (...)} for a model with this config."""
    cond = ["y"] if config.conditional else []
    enc_out = (["mean", "log_sigma"] if config.z_dim else []) + (["logits"] if config.n_cat else [])
    return {"encoder": (["x", *cond], enc_out), "decoder": (["z", *cond], ["logits"])}


def weights_sha256(model: VAE) -> str:
    """sha256 of the state_dict (names, shapes, values as float32): the same weights give the same key whatever
    the device, dtype or memory layout of the model; stored in each graph's metadata to key caches on."""
    h = hashlib.sha256()
    for name, t in sorted(_float32_state(model).items()):
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------- the traced modules
class _Encoder(nn.Module):
    """x [, y] -> posterior parameters, the maths of VAE.encode/_posterior without building a Distribution."""

    def __init__(self, model: VAE):
        super().__init__()
        self.features, self.enc_fc = model.features, model.enc_fc
        c = model.config
        self.sizes = [s for s in (c.z_dim, c.z_dim, c.n_cat * c.k_cat) if s]
        self.z_dim, self.n_cat, self.k_cat = c.z_dim, c.n_cat, c.k_cat

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        h = self.features(x)
        if y is not None:
            h = torch.cat([h, y], 1)
        params = self.enc_fc(h)
        parts = params.split(self.sizes, 1) if len(self.sizes) > 1 else (params,)
        out: list[torch.Tensor] = []
        if self.z_dim:
            out += [parts[0], 0.5 * parts[1]]  # log sigma = 0.5 * logvar, as VAE._posterior takes exp(0.5 * logvar)
        if self.n_cat:
            # -1, not the batch size: a constant shape, so one Reshape node and a dynamic batch axis
            out.append(parts[-1].reshape(-1, self.n_cat, self.k_cat).log_softmax(-1))
        return tuple(out)


class _Decoder(nn.Module):
    """z [, y] -> Bernoulli logits, as VAE.decode."""

    def __init__(self, model: VAE):
        super().__init__()
        self.dec_fc = model.dec_fc
        body = model.dec_body
        self.body = nn.ModuleList(body if isinstance(body, nn.Sequential) else [body])
        if any(isinstance(m, nn.Unflatten) and m.dim != 1 for m in self.body):
            raise ValueError("expected the decoder to unflatten dimension 1 only")

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is not None:
            z = torch.cat([z, y], 1)
        h = self.dec_fc(z)
        for m in self.body:
            # nn.Unflatten traces to a Shape/Slice/Concat chain; a reshape with -1 for the batch is one Reshape node
            h = h.reshape(-1, *m.unflattened_size) if isinstance(m, nn.Unflatten) else m(h)
        return h


def _float32_state(model: VAE, half: bool = False) -> dict[str, torch.Tensor]:
    """The state_dict as float32 CPU tensors; with ``half``, each float rounded to float16 first."""
    def cast(v: torch.Tensor) -> torch.Tensor:
        if not v.is_floating_point():
            return v.detach().cpu().contiguous()
        v = v.detach().to("cpu")
        return (v.half() if half else v).float().contiguous()

    return {k: cast(v) for k, v in model.state_dict().items()}


def _torch_twin(model: VAE, half: bool = False) -> VAE:
    """A float32, eval-mode, contiguous CPU copy of the model built from torch.nn layers.

    The scratch kit's layers are state-dict twins of torch.nn's; traced as they are, their im2col/col2im code becomes
    hundreds of Gather/ScatterND nodes (and ConvTranspose2d does not export at all), while the same weights in
    torch.nn layers become one Conv/ConvTranspose node each with the same outputs (the tests check this). Rebuilding
    rather than deep-copying also drops the channels-last layout vae_hub.load gives conv models, and any float16.
    ``half``: the weights rounded to float16 (what a float16-storage graph holds).
    """
    with torch.random.fork_rng(devices=[]):  # building draws initial weights that are overwritten: keep the caller's RNG
        twin = VAE(dataclasses.replace(model.config, layers="torch"))
    twin.load_state_dict(_float32_state(model, half), strict=True)
    return twin.eval()


def _fold_batch_norm(seq: nn.Module) -> nn.Module:
    """Fold each eval-mode BatchNorm2d into the (transposed) convolution before it: one node instead of two, and the
    TorchScript exporter does not fold it after ConvTranspose itself."""
    if not isinstance(seq, nn.Sequential):
        return seq
    mods, out = list(seq), []
    i = 0
    while i < len(mods):
        m = mods[i]
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(nxt, nn.BatchNorm2d):
            out.append(fuse_conv_bn_eval(m, nxt, transpose=isinstance(m, nn.ConvTranspose2d)))
            i += 2
        else:
            out.append(m)
            i += 1
    return nn.Sequential(*out)


def _graph_modules(model: VAE, half: bool = False) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
    """({"encoder", "decoder"} modules to trace, the same unfolded ones to check them against)."""
    reference = _torch_twin(model, half)
    folded = copy.deepcopy(reference)  # the same weights; folding then leaves the reference as it is
    for name in ("features", "enc_fc", "dec_fc", "dec_body"):
        setattr(folded, name, _fold_batch_norm(getattr(folded, name)))
    trace = {"encoder": _Encoder(folded).eval(), "decoder": _Decoder(folded).eval()}
    ref = {"encoder": _Encoder(reference).eval(), "decoder": _Decoder(reference).eval()}
    return trace, ref


def _example_inputs(config: VAEConfig, graph: str, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    if graph == "encoder":
        first = torch.rand(batch, config.in_channels, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    else:
        first = torch.randn(batch, config.latent_size, generator=g)
    if not config.conditional:
        return (first,)
    return first, torch.eye(config.n_classes)[torch.arange(batch) % config.n_classes]


# ---------------------------------------------------------------------------- export
def _trace(module: nn.Module, args: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str],
           opset: int) -> onnx.ModelProto:
    import onnx

    buf = io.BytesIO()
    with _LOCK, warnings.catch_warnings(), torch.no_grad():
        # dynamo=False on purpose (see the module docstring): torch announces its deprecation on every call, and the
        # exporter's own internals call helpers that are deprecated too
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx\.")
        torch.onnx.export(module, args, buf, dynamo=False, input_names=inputs, output_names=outputs,
                          opset_version=opset, dynamic_axes={n: {0: BATCH} for n in inputs + outputs},
                          do_constant_folding=True)
        shapes = [tuple(t.shape) for t in _as_tuple(module(*args))]
    proto = onnx.load_from_string(buf.getvalue())
    # declare exact output shapes: the exporter leaves dims after a reshape(-1, ...) symbolic ("LogSoftmax..._dim_1")
    for out, shape in zip(proto.graph.output, shapes):
        dims = out.type.tensor_type.shape.dim
        del dims[:]
        for i, size in enumerate(shape):
            if i:
                dims.add().dim_value = size
            else:
                dims.add().dim_param = BATCH
    return proto


def _as_tuple(out: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def _float16_storage(proto: onnx.ModelProto) -> int:
    """Store each float32 initializer that float16 holds exactly as float16, with a Cast back to float32 in front of
    the graph; returns how many were converted. Tiny ones (biases of a few values) are converted too: the saving is
    in the big matrices, the rule is simpler without exceptions."""
    from onnx import TensorProto, helper, numpy_helper

    g = proto.graph
    kept, casts = [], []
    for init in g.initializer:
        a = numpy_helper.to_array(init) if init.data_type == TensorProto.FLOAT else None
        h = None if a is None else a.astype(np.float16)
        if h is None or not np.array_equal(h.astype(np.float32), a):  # not float32, or float16 would change it
            kept.append(init)
            continue
        kept.append(numpy_helper.from_array(h, f"{init.name}.f16"))
        casts.append(helper.make_node("Cast", [f"{init.name}.f16"], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}.cast"))
    del g.initializer[:]
    g.initializer.extend(kept)
    nodes = casts + list(g.node)  # the casts first: the graph stays topologically sorted
    del g.node[:]
    g.node.extend(nodes)
    return len(casts)


def _describe(proto: onnx.ModelProto, model: VAE, graph: str, inputs: list[str], outputs: list[str],
              sha: str, storage: dict[str, str]) -> None:
    import onnx

    from vae_hub import __version__

    c = model.config
    meta = {"vae_hub_version": __version__, "graph": graph, "variant": c.variant, "latent": c.latent,
            "z_dim": c.z_dim, "n_cat": c.n_cat, "k_cat": c.k_cat, "latent_size": c.latent_size,
            "conditional": c.conditional, "n_classes": c.n_classes, "in_channels": c.in_channels,
            "prior_cov": c.prior_cov, "inputs": ",".join(inputs), "outputs": ",".join(outputs), "weights_sha256": sha,
            **storage}
    # metadata values are strings: booleans as true/false, prior_cov as JSON-style nested lists
    text = {k: str(v).lower() if isinstance(v, bool) else ("null" if v is None else str(v)) for k, v in meta.items()}
    onnx.helper.set_model_props(proto, text)
    proto.graph.name = f"{c.variant}-{graph}"
    proto.doc_string = (f"vae-hub {c.variant} {graph}: {', '.join(inputs)} -> {', '.join(outputs)} "
                        f"(batch axis '{BATCH}' dynamic). See vae_hub/hub/onnx.py.")


def _check(data: bytes, reference: nn.Module, config: VAEConfig, graph: str, inputs: list[str]) -> None:
    """Run the serialised graph in onnxruntime on a batch of 3 and compare with torch: a wrong export fails here,
    at export time, rather than in someone's browser."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only
    opts.intra_op_num_threads = 1
    flushed = denormals_flushed()
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    args = _example_inputs(config, graph, 3, seed=1)
    got = sess.run(None, {n: a.numpy() for n, a in zip(inputs, args)})
    if flushed:  # onnxruntime can switch the thread's flushing off, and the next variant train.py trains would crawl
        flush_denormals()
    with torch.no_grad():
        want = reference(*args)
    for name, g, w in zip(sess.get_outputs(), got, _as_tuple(want)):
        w = w.numpy()
        if g.shape != w.shape or not np.allclose(g, w, rtol=TOLERANCE, atol=TOLERANCE):
            err = float(np.abs(g - w).max()) if g.shape == w.shape else float("nan")
            raise RuntimeError(f"{config.variant} {graph}.onnx: onnxruntime's {name.name} {g.shape} differs from "
                               f"torch's {w.shape} (max abs error {err:.2e})")


def float16_exact(model: VAE) -> bool:
    """Whether every floating-point weight of the model is exactly a float16 value (float16-stored weights are)."""
    return all(torch.equal(v, v.half().float()) for v in _float32_state(model).values() if v.is_floating_point())


def export_onnx(model: VAE, folder: str | Path, opset: int = DEFAULT_OPSET, half: bool = False) -> dict[str, Path]:
    """Write encoder.onnx and decoder.onnx for model into folder (created if needed); returns their paths.

    Both graphs are traced from a float32, eval-mode, contiguous CPU copy (the model itself is left untouched),
    given metadata_props (variant, latent sizes, input/output names, weights_sha256, vae_hub_version, and the
    weights' storage: ``weights_storage`` float32/float16, ``float16_exact``), checked (onnx.checker, and onnxruntime
    against torch within 1e-4) and only then written, each atomically. ``half``: float16 weight storage (see the
    module docstring); the check then runs torch on the same float16-rounded weights.
    """
    import onnx

    folder = Path(folder)
    config = model.config
    names = io_names(config)
    sha = weights_sha256(model)
    trace, reference = _graph_modules(model, half)
    storage = {"weights_storage": "float16" if half else "float32"}
    if half:
        storage["float16_exact"] = str(float16_exact(model)).lower()
    blobs = {}
    for graph in ("encoder", "decoder"):
        inputs, outputs = names[graph]
        proto = _trace(trace[graph], _example_inputs(config, graph, 2), inputs, outputs, opset)
        if half:
            _float16_storage(proto)
        _describe(proto, model, graph, inputs, outputs, sha, storage)
        onnx.checker.check_model(proto, full_check=True)
        data = proto.SerializeToString()  # initializers inline: one self-contained file (they are a few MB, far below 2 GB)
        _check(data, reference[graph], config, graph, inputs)
        blobs[graph] = data
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"encoder": folder / ENCODER_FILE, "decoder": folder / DECODER_FILE}
    for graph, data in blobs.items():
        write_atomic(paths[graph], data)
    return paths


def export_folder(folder: str | Path, half: bool = False) -> dict[str, Path]:
    """Load a model folder written by train.py (strictly, as vae_hub.load does) and export its graphs into it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder; expected a model folder written by train.py")
    return export_onnx(VAE.from_folder(folder, read_config(folder)), folder, half=half)


# ---------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vae_hub.onnx",
                                     description=f"Write {ENCODER_FILE} and {DECODER_FILE} into model folders written "
                                                 "by train.py (a pushed folder carries them beside model.safetensors).")
    parser.add_argument("folders", nargs="+", metavar="FOLDER", help="a model folder, or a folder of them (e.g. runs)")
    parser.add_argument("--half", action="store_true",
                        help="store the weights as float16 (exact for float16-stored weights; half the bytes)")
    args = parser.parse_args(argv)

    failed = 0
    for root in map(Path, args.folders):
        folders = model_folders(root) if root.is_dir() else []
        if not folders:
            print(f"error: {root}: not a vae-hub model folder (config.json of a VAE variant) or a folder of them",
                  file=sys.stderr)
            failed += 1
        for folder in folders:
            t0 = time.perf_counter()
            try:
                paths = export_folder(folder, half=args.half)
            except (OSError, ValueError, RuntimeError) as e:
                print(f"error: {folder}: {e}", file=sys.stderr)
                failed += 1
                continue
            sizes = ", ".join(f"{p.name} {p.stat().st_size / 2**20:.2f} MiB" for p in paths.values())
            print(f"{folder}: {sizes} ({time.perf_counter() - t0:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

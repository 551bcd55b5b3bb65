"""Fault suite: a bundled model folder broken one way per case must fail to load with a ValueError that names the
file (config.json / model.safetensors) and the field or tensor; train.py's faults end in one line, not a traceback."""

import json
import math
import os
import random
import shutil
import stat
import struct
import subprocess
import sys

import pytest
import safetensors
import safetensors.torch
import torch

import vae_hub
from vae_hub.checks import checkpoint_epoch
from vae_hub.evaluation.classifier import load_classifier
from vae_hub.hub.repo import read_config
from vae_hub.model.config import VAEConfig

from .conftest import MINI, ROOT

Z20 = ROOT / "pretrained" / "vae-z20"  # MLP, float16 storage
CONV = ROOT / "pretrained" / "conv-vae-z20"  # batch norm: holds int64 num_batches_tracked buffers
CLASSIFIER = ROOT / "pretrained" / "mnist-classifier"
WEIGHTS = "model.safetensors"


def _copy(src, tmp_path, extra=()):
    dst = tmp_path / src.name
    dst.mkdir()
    for name in ("config.json", WEIGHTS, *extra):
        shutil.copy(src / name, dst / name)
    return dst


def _edit_tensors(folder, edit):
    path = folder / WEIGHTS
    state = safetensors.torch.load_file(str(path))
    edit(state)
    safetensors.torch.save_file(state, str(path), metadata={"format": "pt"})


def _edit_config(folder, edit):
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    edit(cfg)
    path.write_text(json.dumps(cfg))


def _fails(load, folder, file, *words):
    with pytest.raises(ValueError) as info:
        load(str(folder))
    msg = str(info.value)
    assert file in msg and all(w in msg for w in words), msg
    return msg


def _header(path):
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return bytearray(data), n, json.loads(data[8:8 + n])


# ---------------------------------------------------------------------------- model.safetensors
BAD_DTYPES = [torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float64,
              torch.float8_e4m3fn]


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=str)
def test_weights_of_a_wrong_dtype_are_refused(tmp_path, dtype):
    folder = _copy(Z20, tmp_path)
    _edit_tensors(folder, lambda sd: sd.update({"enc_fc.0.weight": sd["enc_fc.0.weight"].to(dtype)}))
    _fails(vae_hub.load, folder, WEIGHTS, "'enc_fc.0.weight'", "expected F32 or F16 or BF16")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_weights_of_a_float_dtype_load(tmp_path, dtype):
    folder = _copy(Z20, tmp_path)
    _edit_tensors(folder, lambda sd: sd.update({k: v.to(dtype) for k, v in sd.items()}))
    model = vae_hub.load(str(folder))
    assert torch.isfinite(model.decode(torch.zeros(1, 20))).all()


def test_integer_buffer_stored_as_float_is_refused(tmp_path):
    folder = _copy(CONV, tmp_path)
    key = "features.1.num_batches_tracked"
    _edit_tensors(folder, lambda sd: sd.update({key: sd[key].float()}))
    _fails(vae_hub.load, folder, WEIGHTS, f"'{key}'", "stored as F32; expected I64")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused(tmp_path, value):
    folder = _copy(Z20, tmp_path)

    def poison(sd):
        sd["dec_fc.2.bias"][7] = value

    _edit_tensors(folder, poison)
    _fails(vae_hub.load, folder, WEIGHTS, "'dec_fc.2.bias'", "1 non-finite value")


def test_flipped_exponent_bits_in_the_data_are_caught(tmp_path):
    folder = _copy(Z20, tmp_path)
    path = folder / WEIGHTS
    data, n, header = _header(path)
    start = 8 + n + header["dec_fc.0.weight"]["data_offsets"][0]
    data[start + 1] |= 0x7C  # float16 high byte: all five exponent bits set -> inf or NaN
    path.write_bytes(bytes(data))
    _fails(vae_hub.load, folder, WEIGHTS, "'dec_fc.0.weight'", "non-finite")


def _flip_text(old, new):
    def flip(data, n):
        head = bytes(data[8:8 + n])
        assert old in head and len(old) == len(new)
        data[8:8 + n] = head.replace(old, new, 1)
    return flip


def _flip_byte(offset, value):
    def flip(data, n):
        data[offset if offset >= 0 else 8 + n + offset] = value
    return flip


@pytest.mark.parametrize("flip,words", [
    (_flip_byte(7, 0x7F), ["not a readable safetensors file"]),  # header length prefix
    (_flip_byte(8, ord("[")), ["not a readable safetensors file"]),  # the opening brace
    (_flip_text(b'"F16"', b'"F32"'), ["not a readable safetensors file"]),  # dtype no longer fits its bytes
    (_flip_text(b"[400,20]", b"[401,20]"), ["not a readable safetensors file"]),  # shape no longer fits its bytes
    (_flip_text(b"[400,20]", b"[20,400]"), ["wrong shapes", "dec_fc.0.weight: file (20, 400) vs model (400, 20)"]),
    (_flip_text(b'"enc_fc.0.bias"', b'"enc_fc.0.bia5"'), ["missing tensors ['enc_fc.0.bias']",
                                                        "unexpected tensors ['enc_fc.0.bia5']"]),
], ids=["length", "brace", "dtype", "shape-size", "shape-order", "name"])
def test_flipped_bytes_in_the_header_are_caught(tmp_path, flip, words):
    folder = _copy(Z20, tmp_path)
    path = folder / WEIGHTS
    data, n, _ = _header(path)
    flip(data, n)
    path.write_bytes(bytes(data))
    _fails(vae_hub.load, folder, WEIGHTS, *words)


@pytest.mark.parametrize("cut", [lambda b: b[:-1], lambda b: b[: len(b) // 2], lambda b: b[:8], lambda b: b""],
                         ids=["last-byte", "half", "length-only", "empty"])
def test_truncated_weights_are_refused(tmp_path, cut):
    folder = _copy(Z20, tmp_path)
    path = folder / WEIGHTS
    path.write_bytes(cut(path.read_bytes()))
    _fails(vae_hub.load, folder, WEIGHTS, "not a readable safetensors file")


def test_missing_weights_are_refused_even_beside_a_pickle(tmp_path):
    """No model.safetensors: refused by name, with a pytorch_model.bin beside it too (a pickle is never loaded)."""
    folder = _copy(Z20, tmp_path)
    (folder / WEIGHTS).unlink()
    torch.save({}, folder / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="model.safetensors: missing"):
        vae_hub.load(str(folder))


@pytest.mark.parametrize("edit,words", [
    (lambda sd: sd.pop("enc_fc.2.weight"), ["missing tensors ['enc_fc.2.weight']"]),
    (lambda sd: sd.update(extra=torch.zeros(2)), ["unexpected tensors ['extra']"]),
    (lambda sd: sd.update({"prior_loc": torch.zeros(21)}), ["wrong shapes", "prior_loc: file (21,) vs model (20,)"]),
], ids=["missing", "extra", "shape"])
def test_tensor_set_must_match_the_config(tmp_path, edit, words):
    folder = _copy(Z20, tmp_path)
    _edit_tensors(folder, edit)
    _fails(vae_hub.load, folder, WEIGHTS, "does not match the config's architecture", *words)


def test_header_is_compared_before_any_model_is_built(tmp_path, monkeypatch):
    """A valid but much wider config beside the original weights: refused from the header, no real model built
    (only the meta-device one that names the expected tensors)."""
    folder = _copy(Z20, tmp_path)
    _edit_config(folder, lambda c: c.update(hidden=[16384, 16384]))
    real_init = vae_hub.VAE.__init__

    def init(self, *a, **k):
        real_init(self, *a, **k)
        if any(not p.is_meta for p in self.parameters()):
            raise AssertionError("a real model was built before the header check")

    monkeypatch.setattr(vae_hub.VAE, "__init__", init)
    _fails(vae_hub.load, folder, WEIGHTS, "wrong shapes", "enc_fc.0.weight: file (400, 784) vs model (16384, 784)")


# ---------------------------------------------------------------------------- config.json
def _cov(z, bad):
    m = [[float(i == j) for j in range(z)] for i in range(z)]
    bad(m)
    return m


CONFIG_FAULTS = [
    ("beta", "one"), ("beta", math.nan), ("beta", -5), ("beta", math.inf), ("beta", True), ("beta", None),
    ("z_dim", 20.0), ("z_dim", True), ("z_dim", "20"), ("z_dim", 0), ("z_dim", -1), ("z_dim", 10**6),
    ("hidden", "400"), ("hidden", [400.0]), ("hidden", ["400"]), ("hidden", [0]), ("hidden", [-400]),
    ("hidden", [1500000]), ("hidden", [[400]]), ("hidden", 400), ("hidden", [400] * 9),
    ("prior_cov", _cov(20, lambda m: m[3].__setitem__(3, -1.0))),  # symmetric, one negative eigenvalue
    ("prior_cov", _cov(20, lambda m: m[0].__setitem__(1, 0.5))),  # not symmetric
    ("prior_cov", _cov(20, lambda m: m[2].__setitem__(2, math.nan))),
    ("prior_cov", [[1.0, 0.0], [0.0, 1.0]]), ("prior_cov", "identity"), ("prior_cov", [1.0] * 20),
    ("variant", 5), ("variant", "../../etc"), ("variant", "vae-z99"), ("description", ["x"]), ("in_channels", 1.0),
    ("in_channels", 3), ("backbone", 3), ("backbone", "rnn"), ("conv_channels", [32, 64, 128]), ("conv_channels", [0, 64]),
    ("conv_channels", []), ("conv_hidden", -1), ("conv_hidden", 10**7), ("batch_norm", "false"), ("batch_norm", 0),
    ("layers", None), ("latent", "spiky"), ("n_cat", 3), ("n_cat", 1.5), ("k_cat", True), ("conditional", "yes"),
    ("n_classes", 11), ("tau_start", 0), ("tau_min", 2.0), ("tau_min", -0.5), ("anneal_frac", 1.5),
    ("data", "grey"), ("color_seed", -1), ("epochs", 0), ("epochs", 2.5), ("batch_size", 0), ("batch_size", 10**9),
    ("lr", 0), ("lr", "fast"), ("lr", 2.0), ("lr_schedule", "step"),
    ("lr_warmup", 0.6), ("lr_warmup", -0.1), ("lr_warmup", "10%"), ("seed", 1.5), ("seed", -1), ("seed", 2**64),
    ("tags", "classic"), ("tags", [1]),
]


@pytest.mark.parametrize("field,value", CONFIG_FAULTS, ids=[f"{f}={str(v)[:20]}" for f, v in CONFIG_FAULTS])
def test_bad_config_values_name_the_field(tmp_path, field, value):
    folder = _copy(Z20, tmp_path)
    _edit_config(folder, lambda c: c.update({field: value}))
    _fails(vae_hub.load, folder, "config.json", field)


@pytest.mark.parametrize("text,words", [
    ("[" * 100_000 + "]" * 100_000, ["nested too deeply"]),
    ('{"seed": ' + "9" * 5000 + "}", ["not valid JSON"]),
    ("{not json", ["not valid JSON"]),
    ("\xff\xfe", ["not valid JSON"]),
    ("[1, 2]", ["expected a JSON object"]),
], ids=["deep", "huge-int", "syntax", "encoding", "array"])
def test_unparseable_config_names_the_file(tmp_path, text, words):
    folder = _copy(Z20, tmp_path)
    (folder / "config.json").write_bytes(text.encode("latin-1"))
    _fails(vae_hub.load, folder, "config.json", *words)


def test_nested_and_oversized_values_name_the_field(tmp_path):
    folder = _copy(Z20, tmp_path)
    deep = 400
    for _ in range(700):
        deep = [deep]
    _edit_config(folder, lambda c: c.update(hidden=deep))
    _fails(vae_hub.load, folder, "config.json", "'hidden'", "expected a list of integers")
    _edit_config(folder, lambda c: c.update(hidden=[400], description="x" * (2 << 20)))
    _fails(vae_hub.load, folder, "config.json", "bytes; a config is a small JSON object")


def test_unknown_and_missing_fields_are_named(tmp_path):
    folder = _copy(Z20, tmp_path)
    _edit_config(folder, lambda c: c.update(bogus=1))
    _fails(vae_hub.load, folder, "config.json", "unknown field(s) ['bogus']")
    _edit_config(folder, lambda c: (c.pop("bogus"), c.pop("beta")))
    _fails(vae_hub.load, folder, "config.json", "missing field(s) ['beta']")


def test_every_shipped_config_validates():
    for name, config in vae_hub.VARIANTS.items():
        again = VAEConfig.from_dict(json.loads(json.dumps(config.to_dict())), name)
        assert again == config
    folders = [p for p in sorted((ROOT / "pretrained").iterdir()) if p.is_dir() and p != CLASSIFIER]
    assert len(folders) == len(vae_hub.VARIANTS)
    for folder in folders:
        assert read_config(folder).variant == folder.name
        vae_hub.load(str(folder))  # the dtype and finiteness checks pass on every bundled file
    load_classifier(CLASSIFIER)


# ---------------------------------------------------------------------------- the classifier folder
@pytest.mark.parametrize("field,value", [
    ("channels", "16"), ("channels", [16]), ("channels", [16, 32, 64]), ("channels", [16.0, 32]), ("channels", [0, 32]),
    ("hidden", 1.5), ("hidden", 10**7), ("hidden", True), ("dropout", 1.5), ("dropout", math.nan), ("lr", -1),
    ("max_shift", "2"), ("epochs", 0), ("seed", None), ("bogus", 1), ("model_type", "vae"),
])
def test_bad_classifier_config_names_the_field(tmp_path, field, value):
    folder = _copy(CLASSIFIER, tmp_path)
    _edit_config(folder, lambda c: c.update({field: value}))
    _fails(load_classifier, folder, "config.json", "not a vae-hub-mnist-classifier" if field == "model_type" else field)


@pytest.mark.parametrize("edit,words", [
    (lambda sd: sd["fc1.weight"].__setitem__((0, 0), math.nan), ["'fc1.weight'", "non-finite"]),
    (lambda sd: sd.update({"fc2.bias": sd["fc2.bias"].to(torch.int8)}), ["'fc2.bias'", "stored as I8"]),
    (lambda sd: sd.pop("conv1.bias"), ["missing tensors ['conv1.bias']"]),
    (lambda sd: sd.update({"fc2.weight": torch.zeros(10, 64)}), ["fc2.weight: file (10, 64) vs model (10, 128)"]),
], ids=["nan", "int8", "missing", "shape"])
def test_broken_classifier_weights_name_the_tensor(tmp_path, edit, words):
    folder = _copy(CLASSIFIER, tmp_path)
    _edit_tensors(folder, edit)
    _fails(load_classifier, folder, WEIGHTS, *words)


def test_classifier_config_nested_too_deeply(tmp_path):
    folder = _copy(CLASSIFIER, tmp_path)
    (folder / "config.json").write_text('{"channels": ' + "[" * 50_000)
    _fails(load_classifier, folder, "config.json", "nested too deeply")


# ---------------------------------------------------------------------------- the Space loads through the same path
def test_space_refuses_nan_weights_with_the_loader_reason(tmp_path):
    from vae_space.engine import Engine

    folder = _copy(Z20, tmp_path, extra=("README.md", "history.json"))
    _edit_tensors(folder, lambda sd: sd["enc_fc.0.bias"].__setitem__(0, math.nan))
    eng = Engine.start(str(tmp_path), variants=["vae-z20"], background=False)
    assert "vae-z20" not in eng.models
    assert "model.safetensors" in eng.missing["vae-z20"] and "'enc_fc.0.bias'" in eng.missing["vae-z20"]


# ---------------------------------------------------------------------------- files are written with the usual mode
def test_weights_and_checkpoints_get_the_usual_file_mode(tmp_path):
    from vae_hub.files.tensors import save_safetensors, usual_mode

    vae_hub.build("vae-z2").save_pretrained(tmp_path)
    save_safetensors({"x": torch.zeros(2)}, tmp_path / "other.safetensors")
    (tmp_path / "plain.txt").write_text("x")
    want = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert want == usual_mode()
    for name in (WEIGHTS, "other.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name
    # no temp file left behind (and no placeholder card: the real one is written last, by save_model_folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", WEIGHTS, "other.safetensors", "plain.txt"]


# ---------------------------------------------------------------------------- train.py
def _dataset(tmp_path, n_train=40, n_test=40, bad=None):
    """A copy of tests/data/mnist-mini cut to n rows, with row 3 of the train split replaced by bad(cell)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    # a unique folder name: `datasets` caches a local folder by its name and README, not its files' content
    out = tmp_path / f"data-{tmp_path.name}"
    out.mkdir()
    shutil.copy(MINI / "README.md", out / "README.md")
    for split, n in (("train", n_train), ("test", n_test)):
        name = f"{split}-00000-of-00001.parquet"
        table = pq.read_table(MINI / name).slice(0, n)
        if bad is not None and split == "train":
            rows = table.to_pylist()
            rows[3]["image"] = bad(rows[3]["image"])
            table = pa.Table.from_pylist(rows, schema=table.schema)
        pq.write_table(table, out / name)
    return out


def _one_line_error(stderr, *words):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.parametrize("rows,bad,words", [
    ((1, 40), None, ["split 'train' holds 1 image(s)", "at least 2"]),
    ((40, 1), None, ["split 'test' holds 1 image(s)"]),
    ((40, 40), lambda cell: None, ["split 'train': image 3: image is null"]),
    ((40, 40), lambda cell: {"bytes": None, "path": None}, ["split 'train': image 3: image is null"]),
    ((40, 40), lambda cell: {"bytes": b"not a png", "path": None}, ["image 3: not a decodable image"]),
    ((40, 40), lambda cell: {"bytes": cell["bytes"][:60], "path": None}, ["image 3: not a decodable image"]),
    ((40, 40), lambda cell: {"bytes": None, "path": "/nonexistent/3.png"}, ["image 3: image file", "cannot be read"]),
], ids=["1-row-train", "1-row-test", "null-cell", "null-bytes", "garbage", "truncated", "missing-file"])
def test_train_cli_bad_dataset_is_one_line(tmp_path, rows, bad, words):
    _train_cli_refuses(tmp_path, _dataset(tmp_path, *rows, bad=bad), words)


def _train_cli_refuses(tmp_path, data, words) -> None:
    """train.py on ``data`` exits 1 with one line naming the dataset and saying ``words``."""
    r = subprocess.run([sys.executable, str(ROOT / "train.py"), "--variants", "vae-z2", "--dataset", str(data),
                        "--epochs", "1", "--out", str(tmp_path / "runs"), "--no-progress"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1
    _one_line_error(r.stderr, str(data), *words)


def _damaged_parquet(out):
    """Random bytes over the middle of the train split's parquet file (its footer, the schema, intact)."""
    path = out / "train-00000-of-00001.parquet"
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 2000] = random.Random(0).randbytes(2000)
    path.write_bytes(bytes(data))


def _renamed_column(out):
    """The train split's image column under another name: the splits no longer share their columns."""
    import pyarrow.parquet as pq

    path = out / "train-00000-of-00001.parquet"
    table = pq.read_table(path)
    pq.write_table(table.rename_columns(["picture" if c == "image" else c for c in table.column_names]), path)


@pytest.mark.parametrize("damage,words", [
    (_damaged_parquet, ["a parquet file is damaged or not parquet"]),
    (_renamed_column, ["do not all have the same columns", "(image, label)"]),
], ids=["random-bytes", "other-columns"])
def test_train_cli_unreadable_parquet_is_one_line(tmp_path, damage, words):
    """datasets raised DatasetGenerationError with 40-60 lines of traceback for these."""
    data = _dataset(tmp_path)
    damage(data)
    _train_cli_refuses(tmp_path, data, words)


def _main(argv):
    """train.py's main in this process (so faults can be patched in); returns the SystemExit line."""
    import train as train_cli

    with pytest.raises(SystemExit) as info:
        train_cli.main(argv)
    assert isinstance(info.value.code, str), info.value.code
    return info.value.code


def _disk_full_on(monkeypatch, name, after=0):
    """safetensors' save_file fails for files called name (or their hidden temp siblings .name.tmp…) once `after`
    of them were written."""
    real = safetensors.torch.save_file
    written = []

    def save_file(tensors, filename, metadata=None):
        ours = os.path.basename(filename).lstrip(".").startswith(name)
        if ours and len(written) >= after:
            # what safetensors raises when the disk is full (seen on a 64 KiB tmpfs)
            raise safetensors.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        if ours:
            written.append(filename)
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)


def test_disk_full_while_checkpointing_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    ckpt = out / "vae-z2" / "checkpoint" / "last.safetensors"
    _disk_full_on(monkeypatch, "last.safetensors", after=1)  # epoch 2's checkpoint
    line = _main(["--variants", "vae-z2", "--dataset", str(MINI), "--epochs", "3", "--out", str(out), "--no-progress"])
    _one_line_error(line, f"could not write {ckpt}", "no space left on device",
                    f"the last checkpoint {ckpt} (after epoch 1) is intact", "--resume")
    assert checkpoint_epoch(ckpt) == 1
    assert os.listdir(ckpt.parent) == ["last.safetensors"]  # no partial temp file


def test_disk_full_while_writing_the_folder_keeps_the_checkpoint_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    args = ["--variants", "vae-z2", "--dataset", str(MINI), "--quick", "--out", str(out), "--no-progress"]
    ckpt = out / "vae-z2" / "checkpoint" / "last.safetensors"
    with monkeypatch.context() as m:
        _disk_full_on(m, WEIGHTS)
        line = _main(args)
    _one_line_error(line, f"could not write {out / 'vae-z2' / WEIGHTS}", "no space left on device",
                    f"the last checkpoint {ckpt} (after epoch 1) is intact")
    import train as train_cli

    assert train_cli.main([*args, "--resume"]) == 0  # nothing was lost: the folder is written from the checkpoint
    assert vae_hub.load(str(out / "vae-z2")).config.variant == "vae-z2" and not ckpt.exists()


def test_nan_weights_at_evaluation_read_like_a_nan_loss(tmp_path, monkeypatch):
    import vae_hub.training.loop as trainer

    real = trainer.make_optimizer
    steps_per_epoch = math.ceil(600 / vae_hub.get_config("vae-z2").batch_size)

    def make_optimizer(model):
        opt = real(model)
        step, calls = opt.step, []

        def poisoned_step(*a, **k):
            out = step(*a, **k)
            calls.append(1)
            if len(calls) == 2 * steps_per_epoch:  # the last step of epoch 2: the loss never sees it
                with torch.no_grad():
                    model.enc_fc[0].weight[0, 0] = math.nan
            return out

        opt.step = poisoned_step
        return opt

    monkeypatch.setattr(trainer, "make_optimizer", make_optimizer)
    out = tmp_path / "runs"
    ckpt = out / "vae-z2" / "checkpoint" / "last.safetensors"
    line = _main(["--variants", "vae-z2", "--dataset", str(MINI), "--epochs", "3", "--out", str(out), "--no-progress"])
    _one_line_error(line, f"vae-z2: non-finite weights (enc_fc.0.weight) at epoch 2, step {steps_per_epoch - 1}; "
                          f"the last good checkpoint is kept at {ckpt}")
    assert checkpoint_epoch(ckpt) == 1

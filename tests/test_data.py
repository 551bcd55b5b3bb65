import time

import pytest
import torch

from vae_hub.data.mnist import color_table, load_split, make_inputs

from .conftest import MINI


def test_loads_through_datasets_and_caches(mini):
    train, test = mini
    assert train.images.shape == (600, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.labels.shape == (1000,) and test.labels.dtype == torch.int64
    assert test.labels[:5].tolist() == [1, 4, 4, 4, 6]  # test digits 2, 24, 33, 48, 50 of MNIST
    t = time.perf_counter()
    again = load_split(str(MINI), "test")
    assert time.perf_counter() - t < 5
    assert torch.equal(again.images, test.images)


def test_missing_dataset_names_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found: expected a folder in the ylecun/mnist layout"):
        load_split(str(tmp_path / "nope"), "train")


def test_missing_split_and_wrong_schema(tmp_path):
    import datasets

    with pytest.raises(ValueError, match="has no split 'validation'"):
        load_split(str(MINI), "validation")
    bad = tmp_path / "bad.parquet"
    datasets.Dataset.from_dict({"pixels": [[0] * 4], "label": [1]}).to_parquet(str(bad))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['image'\]"):
        load_split(str(bad), "train")


def test_wrong_image_size_is_rejected(tmp_path):
    import datasets
    from PIL import Image

    ds = datasets.Dataset.from_dict({"image": [Image.new("L", (32, 32))], "label": [3]},
                                    features=datasets.Features({"image": datasets.Image(),
                                                                "label": datasets.Value("int64")}))
    path = tmp_path / "big.parquet"
    ds.to_parquet(str(path))
    with pytest.raises(ValueError, match="image 0 is 32x32; expected 28x28"):
        load_split(str(path), "train", use_cache=False)


def test_transforms(mini):
    imgs = mini[1].images[:64]
    gray = make_inputs(imgs, "gray")
    assert gray.min() >= 0 and gray.max() <= 1 and gray.shape == (64, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    b1, b2 = make_inputs(imgs, "binarized", generator=g), make_inputs(imgs, "binarized", generator=g)
    assert set(b1.unique().tolist()) <= {0.0, 1.0} and not torch.equal(b1, b2)  # fresh draw each time
    assert abs(float(b1.mean() - gray.mean())) < 0.01
    colors = color_table(1000, seed=3)
    assert torch.equal(colors, color_table(1000, seed=3)) and not torch.equal(colors, color_table(1000, seed=4))
    assert torch.equal(color_table(10, seed=3), colors[:10])  # per index: same colour whatever n is
    rgb = make_inputs(imgs, "color", colors[:64])
    assert rgb.shape == (64, 3, 28, 28)
    torch.testing.assert_close(rgb.amax(1), gray[:, 0] * colors[:64].amax(1)[:, None, None])


def test_a_cached_local_split_skips_datasets_and_follows_file_changes(tmp_path, monkeypatch):
    import os
    import shutil
    import subprocess
    import sys

    import pyarrow.parquet as pq

    from vae_hub.data.mnist import _local_key

    data, cache = tmp_path / "mnist", tmp_path / "cache"
    shutil.copytree(MINI, data)
    monkeypatch.setenv("VAE_HUB_CACHE", str(cache))
    first = load_split(str(data), "train")
    code = (f"import sys; from vae_hub.data.mnist import load_split; s = load_split({str(data)!r}, 'train'); "
            "print(len(s), 'datasets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "VAE_HUB_CACHE": str(cache)}).stdout.split()
    assert out == [str(len(first)), "False"]  # from the cache, without importing `datasets`
    # the data changed: its cache key changes, so our cache cannot answer (a fresh decode goes through
    # `datasets`, whose own cache is its business)
    key = _local_key(str(data))
    part = data / "train-00000-of-00001.parquet"
    pq.write_table(pq.read_table(part).slice(0, 10), part)
    rewritten = _local_key(str(data))
    assert rewritten != key
    os.utime(data / "README.md", ns=(0, 0))  # a touched file alone changes it too
    assert _local_key(str(data)) not in (key, rewritten) and _local_key("ylecun/mnist") is None

"""The density of the training codes (vae_hub.hub.density): chosen on held-out codes, stored without pickle, sampled
reproducibly, and refused clearly where it is missing or damaged."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

import vae_hub
from vae_hub.hub import density

from .conftest import ROOT


def _blobs(n: int, centres: list[list[float]], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.tensor(centres)
    return c[torch.randint(len(c), (n,), generator=g)] + 0.3 * torch.randn(n, c.shape[1], generator=g)


def test_the_number_of_components_is_chosen_on_held_out_codes():
    one, info1 = density.fit(_blobs(2000, [[0.0, 0.0]]), candidates=(1, 5))
    three, info3 = density.fit(_blobs(2000, [[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]]), candidates=(1, 3, 20))
    assert info3["n_components"] == 3 and info3["heldout_loglik"]["3"] > info3["heldout_loglik"]["1"]
    assert info1["n_components"] in (1, 5) and info1["heldout_loglik"]["1"] > info1["heldout_loglik"]["5"] - 0.05
    assert three.sample((5,)).shape == (5, 2) and one.sample((5,)).shape == (5, 2)


def test_saved_without_pickle_and_loaded_the_same(tmp_path):
    dist, info = density.fit(_blobs(500, [[-2.0, 1.0], [2.0, -1.0]]), candidates=(1, 2))
    path = density.save(dist, info, tmp_path / density.FILE)
    again, info2 = density.load(path, 2)
    x = torch.randn(10, 2)
    torch.testing.assert_close(again.log_prob(x), dist.log_prob(x), rtol=1e-5, atol=1e-5)
    assert info2 == info
    with pytest.raises(ValueError, match="expected weights"):
        density.load(path, 3)  # a density for another latent size


def test_sample_from_the_density_of_a_bundled_model_and_clear_errors(tmp_path):
    folder = tmp_path / "vae-z2"
    shutil.copytree(ROOT / "pretrained" / "vae-z2", folder)
    (folder / density.FILE).unlink(missing_ok=True)
    model = vae_hub.load(str(folder))
    with pytest.raises(ValueError, match="no density of its training codes.*python -m vae_hub.density"):
        model.sample(2, source="density")
    with pytest.raises(ValueError, match="expected 'prior' or 'density'"):
        model.sample(2, source="posterior")
    codes = _blobs(600, [[1.5, 1.5], [-1.5, -1.5]])
    dist, info = density.fit(codes, candidates=(1, 2))
    density.save(dist, info, folder / density.FILE)
    model = vae_hub.load(str(folder))
    a = model.sample_codes(4000, "density", torch.Generator().manual_seed(3))
    b = model.sample_codes(4000, "density", torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)  # a generator makes the draw reproducible
    assert (a.mean(0) - codes.mean(0)).abs().max() < 0.15 and abs(a.std(0) - codes.std(0)).max() < 0.15
    assert model.sample(3, source="density").shape == (3, 1, 28, 28)
    (folder / density.FILE).write_bytes(b"\x00" * 40)  # damaged: the model still loads, with a warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = vae_hub.load(str(folder))
    assert model.code_density is None and any(density.FILE in str(w.message) for w in caught)

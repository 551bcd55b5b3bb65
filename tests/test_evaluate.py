import json
import math

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from torch.distributions import Independent, Normal

import vae_hub
from vae_hub.evaluation import metrics as M
from vae_hub.evaluation.evaluate import MARK_END, MARK_START, main, update_markdown
from vae_hub.model.distributions import OneHotGumbel


# ---------------------------------------------------------------------------- tiny models with exact p(x)
class LinearBernoulli:
    """z ~ N(0, 1) in 1-D; x in {0, 1}^D with logits a*z + b. p(x) is a 1-D integral: exact by quadrature.

    The encoder proposes N(m + 0.5 s, 1.3^2) around the true posterior mean m (std s, by quadrature): deliberately
    off, so the ELBO is visibly below log p(x), but wider than the prior, so its tails cover the posterior's and
    the importance weights stay bounded (fast convergence).
    """

    def __init__(self, a: torch.Tensor, b: torch.Tensor):
        self.a, self.b = a, b
        self.prior = Independent(Normal(torch.zeros(1), torch.ones(1)), 1)
        self.grid = torch.linspace(-12, 12, 48001, dtype=torch.float64)

    def _log_joint(self, x):  # (B, T): log p(x, z=t) on the grid
        t = self.grid
        logits = t[:, None] * self.a.double() + self.b.double()  # (T, D)
        ll = -torch.nn.functional.binary_cross_entropy_with_logits(
            logits[None].expand(len(x), -1, -1), x.double()[:, None].expand(-1, len(t), -1), reduction="none").sum(-1)
        return ll - 0.5 * t**2 - 0.5 * math.log(2 * math.pi)

    def exact_log_px(self, x):
        return self._log_joint(x).logsumexp(1) + math.log(float(self.grid[1] - self.grid[0]))

    def encode(self, x):
        w = (self._log_joint(x) - self._log_joint(x).logsumexp(1, keepdim=True)).exp()
        m = (w * self.grid).sum(1)
        s = ((w * self.grid**2).sum(1) - m**2).sqrt()
        return Independent(Normal((m + 0.5 * s).float()[:, None], torch.full((len(x), 1), 1.3)), 1)

    def decode(self, z):
        return z @ self.a[None] + self.b


class OneCategorical:
    """One K-way categorical latent (uniform prior), x in {0, 1}^D: p(x) is a sum over K codes.

    The encoder proposes the true posterior with perturbed logits, so k=1 is visibly below log p(x)."""

    def __init__(self, w: torch.Tensor):
        self.w = w  # (K, D) logits per code
        self.prior = OneHotGumbel(torch.zeros(1, w.shape[0]))

    def _log_joint(self, x):  # (B, K): log p(x, code)
        return -torch.nn.functional.binary_cross_entropy_with_logits(
            self.w[None].expand(len(x), -1, -1), x[:, None].expand(-1, len(self.w), -1), reduction="none"
        ).sum(-1) - math.log(len(self.w))

    def encode(self, x):
        return OneHotGumbel((self._log_joint(x) + torch.linspace(-1, 1, len(self.w)))[:, None])

    def decode(self, z):
        return z @ self.w

    def exact_log_px(self, x):
        return self._log_joint(x).logsumexp(1)


def _all_patterns(d: int) -> torch.Tensor:
    return torch.tensor([[(i >> j) & 1 for j in range(d)] for i in range(2**d)], dtype=torch.float32)


def test_iwae_converges_to_the_exact_likelihood_of_a_linear_gaussian_bernoulli_model():
    torch.manual_seed(0)
    model = LinearBernoulli(torch.tensor([2.0, -1.5, 1.0, 0.5]), torch.tensor([0.2, -0.3, 0.1, 0.0]))
    x = _all_patterns(4)
    exact = model.exact_log_px(x)
    torch.testing.assert_close(exact.exp().sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-6, rtol=0)
    logw = M.log_weights(model, x, k=20000, chunk=20000)
    err = {k: M.iwae_estimate(logw, k) - exact for k in (1, 10, 20000)}
    # the ELBO (k=1) sits well below; by k=20000 only Monte-Carlo noise is left (standard error ~0.007 per
    # pattern, ~0.002 for the mean over the 16 patterns)
    assert (err[1] < -0.05).all() and err[1].abs().max() > err[10].abs().max() > err[20000].abs().max()
    assert err[20000].abs().max() < 0.025 and abs(float(err[20000].mean())) < 0.006, err[20000]


def test_iwae_converges_for_a_discrete_latent_with_hard_samples():
    torch.manual_seed(0)
    model = OneCategorical(torch.randn(5, 6) * 2)
    x = _all_patterns(6)[::5]
    exact = model.exact_log_px(x).double()
    logw = M.log_weights(model, x, k=20000, chunk=20000)
    elbo = M.iwae_estimate(logw, 1)
    assert (elbo < exact).all() and float((exact - elbo).mean()) > 0.1
    torch.testing.assert_close(M.iwae_estimate(logw, 20000), exact, atol=0.01, rtol=0)


@pytest.mark.parametrize("name", ["vae-z20", "cvae", "vae-z2-corr"])
def test_iwae_is_at_least_the_elbo_and_grows_with_k(name, mini):
    torch.manual_seed(0)
    model = vae_hub.build(name).eval()
    x = torch.bernoulli(mini[1].images[:16].float() / 255, generator=torch.Generator().manual_seed(0))
    y = mini[1].labels[:16] if model.config.conditional else None
    logw = M.log_weights(model, x, y, k=1000, chunk=4000)
    est = [M.iwae_estimate(logw, k) for k in (1, 10, 100, 1000)]
    means = [float(e.mean()) for e in est]
    assert means == sorted(means) and means[-1] > means[0] + 0.05, means
    # the same draws: log-mean-exp >= mean (Jensen), digit by digit
    assert (M.iwae_estimate(logw, 1000) >= M.iwae_estimate(logw, 1) - 1e-9).all()
    # k = 1 is the ELBO: matches recon + KL from the model's forward pass on average
    torch.manual_seed(1)
    with torch.no_grad():
        out = model(x, y)
    assert abs(float(-(out.recon + out.kl).mean()) - means[0]) < 0.05 * abs(means[0])


# ---------------------------------------------------------------------------- latent usage and label information
def test_active_units_count_on_a_synthetic_posterior():
    torch.manual_seed(0)
    stds = torch.tensor([1.0, 0.3, 0.12, 0.08, 0.0])
    means = torch.randn(20000, 5) * stds
    count, var = M.active_units(means, 0.01)
    assert count == 3  # variances 1, 0.09, 0.0144 are above 0.01; 0.0064 and 0 are not
    torch.testing.assert_close(torch.tensor(var, dtype=torch.float64), stds.double() ** 2, atol=0.005, rtol=0.05)


@pytest.mark.parametrize("name", ["vae-z20", "vae-z2-corr", "color-gumbel", "color-joint"])
def test_kl_per_unit_adds_up(name):
    torch.manual_seed(0)
    model = vae_hub.build(name).eval()
    x = torch.rand(4, model.config.in_channels, 28, 28)
    with torch.no_grad():
        post = model.encode(x)
        cont, disc = M.kl_per_unit(post, model.prior)
        total = sum(t.sum(1) for t in (cont, disc) if t is not None)
        if model.config.prior_cov is None:
            torch.testing.assert_close(total, model.kl(post), atol=1e-4, rtol=1e-4)
        else:  # per-dimension terms are KLs to the prior's marginals; all non-negative
            assert cont.shape == (4, 2) and (cont >= 0).all()


def test_linear_probe_finds_labels_in_clusters_and_none_in_noise():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (4000,), generator=g)
    centres = torch.randn(10, 6, generator=g) * 2
    clustered = centres[labels] + 0.3 * torch.randn(4000, 6, generator=g)
    noise = torch.randn(4000, 6, generator=g)
    tr, te = slice(0, 3000), slice(3000, None)
    acc = lambda z: M.linear_probe(z[tr], labels[tr], z[te], labels[te])["test_accuracy"]
    assert acc(clustered) > 0.95
    assert acc(noise) < 0.16  # chance is 0.10


def test_mig_is_high_for_a_label_dimension_and_low_for_noise():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (5000,), generator=g)
    noise = torch.randn(5000, 4, generator=g)
    aligned = noise.clone()
    aligned[:, 2] = labels + 0.1 * torch.randn(5000, generator=g)
    good, bad = M.mutual_information_gap(aligned, labels), M.mutual_information_gap(noise, labels)
    assert good["mig"] > 0.8 and max(range(4), key=lambda j: good["mi_normalised"][j]) == 2
    assert bad["mig"] < 0.02 and max(bad["mi_normalised"]) < 0.03


# ---------------------------------------------------------------------------- sample quality and colour
def test_frechet_distance():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3000, 16, generator=g) @ torch.randn(16, 16, generator=g)
    assert M.frechet_distance(a, a) < 1e-6 * float(a.var(0).sum())
    shift = torch.randn(16, generator=g)
    # a pure translation: the covariance terms cancel, leaving |shift|^2
    assert M.frechet_distance(a, a + shift) == pytest.approx(float(shift.pow(2).sum()), rel=1e-6)
    b = torch.randn(3000, 16, generator=g) * 2
    assert M.frechet_distance(a, b) == pytest.approx(M.frechet_distance(b, a), rel=1e-6)
    from scipy import linalg  # cross-check the eigh square roots (scipy is in requirements.txt)
    s1, s2 = torch.cov(a.T.double()).numpy(), torch.cov(b.T.double()).numpy()
    ref = float(((a.double().mean(0) - b.double().mean(0)) ** 2).sum()) + s1.trace() + s2.trace() \
        - 2 * linalg.sqrtm(s1 @ s2).real.trace()
    assert M.frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)


def test_stroke_colour_and_angle():
    digit = torch.rand(5, 1, 28, 28) * (torch.rand(5, 1, 28, 28) > 0.7)
    colours = torch.rand(5, 3)
    colours = colours / colours.amax(1, keepdim=True)
    assert M.angular_error(M.stroke_colour(digit * colours[:, :, None, None]), colours).max() < 1e-3
    assert M.angular_error(torch.tensor([[1.0, 0, 0]]), torch.tensor([[0.0, 2, 0]])).item() == pytest.approx(90)


# ---------------------------------------------------------------------------- the command
def test_update_markdown_replaces_only_between_markers(tmp_path):
    p = tmp_path / "README.md"
    p.write_text(f"intro\n{MARK_START}\nold table\n{MARK_END}\noutro\n")
    update_markdown(p, "| new |\n")
    assert p.read_text() == f"intro\n{MARK_START}\n| new |\n{MARK_END}\noutro\n"
    (tmp_path / "plain.md").write_text("no markers")
    with pytest.raises(ValueError, match="no '<!-- results:start -->'"):
        update_markdown(tmp_path / "plain.md", "x")


@pytest.fixture(scope="module")
def models_dir(mini, tmp_path_factory):
    from vae_hub.evaluation.classifier import ClassifierConfig, save_classifier, train_classifier
    from vae_hub.hub.save import save_model_folder
    from vae_hub.training.loop import fit

    root = tmp_path_factory.mktemp("models")
    train, test = mini[0].subset(128), mini[1].subset(100)
    for name in ("vae-z2", "cvae", "color-joint"):
        cfg = vae_hub.get_config(name, epochs=1)
        model, hist, _ = fit(cfg, train, test, root / name, progress_bar=False, log=lambda s: None)
        save_model_folder(model, root / name, hist, {"dataset": "mini", "n_train": 128, "seconds_total": 1.0,
                                                      "hardware": "test"})
    clf, hist = train_classifier(mini[0].subset(300), mini[1].subset(100), ClassifierConfig(epochs=1), log=lambda s: None)
    save_classifier(clf, root / "mnist-classifier", hist, {"n_train": 300})
    return root


def test_evaluate_quick_writes_json_table_figures_and_cards(models_dir, tmp_path):
    from .conftest import MINI

    readme = tmp_path / "README.md"
    readme.write_text(f"# results\n{MARK_START}\n{MARK_END}\n")
    out = tmp_path / "eval"
    assert main(["--models", str(models_dir), "--dataset", str(MINI), "--out", str(out), "--quick",
                 "--update-readme", str(readme)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert list(report["models"]) == ["vae-z2", "cvae", "color-joint"]  # registry order; the classifier is skipped
    s = report["settings"]
    assert s["quick"] and s["nll_k"] == 100 and s["nll_images"] == 12 and "seed" in s
    assert report["command"].startswith("python -m vae_hub.evaluate --models")
    z2, cvae, col = (report["models"][n] for n in ("vae-z2", "cvae", "color-joint"))
    for r in (z2, cvae):
        assert r["nll"] <= r["elbo_bin"] + 1e-6 and r["nll_se"] > 0 and r["nll_images"] == 12
        ks = r["nll_by_k"]
        assert ks["100"] <= ks["1"] and set(ks) == {"1", "10", "100"}
    assert z2["active_units"] <= 2 and 0 <= z2["probe_accuracy"] <= 1 and z2["fd"] > 0 and z2["mig"] is not None
    assert 0 <= cvae["conditional_accuracy"] <= 1 and cvae["likelihood_of"].startswith("log p(x|y)")
    assert col["nll"] is None and col["colour_angle_recon"] >= 0 and len(col["colour_share"]) == 10 + 5
    text = readme.read_text()
    assert "| `vae-z2` |" in text and "| `color-joint` |" in text and "--quick" in text and "85.33" in text
    assert text == f"# results\n{MARK_START}\n{(out / 'results.md').read_text().rstrip()}\n{MARK_END}\n"
    for name, keys in (("vae-z2", {"nll", "fd", "probe_accuracy", "mig"}), ("cvae", {"conditional_accuracy"}),
                       ("color-joint", {"colour_angle_recon", "colour_digit_acc_recon"})):
        folder = models_dir / name
        assert (out / "figures" / name / "uncertainty.png").is_file() and (folder / "figures" / "uncertainty.png").is_file()
        card = ModelCard.load(folder / "README.md")
        got = {r.metric_type: r.metric_value for r in card.data.eval_results}
        assert keys <= got.keys(), got.keys()
        m = json.loads((folder / "metrics.json").read_text())
        assert all(got[k] == pytest.approx(m[k], abs=1e-4) for k in keys)  # the card carries the JSON's numbers
        assert "[--quick settings]" in card.text
    assert (out / "figures" / "color-joint" / "latent_pca.png").is_file()
    # samples from the training codes' density, beside the prior's, for the Gaussian-latent models only
    for r in (z2, cvae):
        assert r["density_fd"] > 0 and 0 < r["density_confidence"] <= 1 and 0 <= r["density_balance"] <= 1
        assert r["density_components"] in (1, 2, 5) and 0 < r["sample_confidence"] <= 1
    assert "density_fd" not in col and not (models_dir / "color-joint" / "density.safetensors").exists()
    assert (models_dir / "vae-z2" / "density.safetensors").is_file() and "Samples from where the data lives" in text
    assert vae_hub.load(str(models_dir / "cvae")).code_density_info["n_components"] == cvae["density_components"]
    _check_factor_metrics(report, models_dir, text)


def _check_factor_metrics(report: dict, models_dir, text: str) -> None:
    """MIG/SAP/DCI against the handwriting factors: for every Gaussian latent, in range, in the table and the cards,
    and the same numbers as scoring the model's own test-split means directly."""
    from vae_hub.data.mnist import load_split
    from vae_hub.evaluation import disentangle, morpho
    from vae_hub.evaluation.protocol import model_inputs
    from vae_hub.model.vae import encode_split

    from .conftest import MINI

    assert "| model | β | MIG (factors) | SAP | DCI D | DCI C | DCI I | slant | thickness |" in text
    assert "MIG (digit label)" in text
    for name, dims in (("vae-z2", 2), ("cvae", 8), ("color-joint", 10)):
        r = report["models"][name]
        assert r["morpho_factors"] == list(morpho.FACTORS) and r["morpho_dci_regressor"] == "lasso"  # --quick
        corr = np.asarray(r["morpho_correlation"])
        assert corr.shape == (dims, 6) and np.abs(corr).max() <= 1 and np.abs(corr).max() > 0.1
        assert len(r["morpho_dominant"]) == dims
        for key in ("morpho_mig", "morpho_sap", "morpho_dci_disentanglement", "morpho_dci_completeness"):
            assert 0 <= r[key] <= 1, (name, key, r[key])
        assert r["morpho_dci_informativeness"] <= 1
        assert f"| `{name}` | {r['beta']:g} | {r['morpho_mig']:.3f} | {r['morpho_sap']:.3f} |" in text
        card = ModelCard.load(models_dir / name / "README.md")
        got = {m.metric_type: m.metric_value for m in card.data.eval_results}
        assert got["morpho_mig"] == pytest.approx(r["morpho_mig"], abs=1e-4)
        assert got["morpho_dci_disentanglement"] == pytest.approx(r["morpho_dci_disentanglement"], abs=1e-4)
    model = vae_hub.load(str(models_dir / "vae-z2"))
    test = load_split(str(MINI), "test")
    means, _ = encode_split(model, *model_inputs(model, test, report["settings"]["binarize_seed"]))
    direct = disentangle.factor_metrics(means.double().numpy(), morpho.split_factors(test.images.numpy()),
                                        regressors=("lasso",))
    z2 = report["models"]["vae-z2"]
    assert z2["morpho_mig"] == pytest.approx(direct["mig"], rel=1e-4)
    assert z2["morpho_dci_informativeness"] == pytest.approx(direct["dci_informativeness"], rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(z2["morpho_correlation"], direct["correlation"], atol=1e-5)


def test_dci_regressor_setting_from_the_command_line():
    from vae_hub.evaluation.evaluate import parse_args, settings_from_args

    assert settings_from_args(parse_args([])).dci_regressor == "gbt"
    assert settings_from_args(parse_args(["--quick"])).dci_regressor == "lasso"
    assert settings_from_args(parse_args(["--quick", "--dci-regressor", "gbt"])).dci_regressor == "gbt"
    with pytest.raises(SystemExit):
        parse_args(["--dci-regressor", "forest"])


def test_merge_reevaluates_one_model_and_keeps_the_others(models_dir, tmp_path):
    from .conftest import MINI

    out = tmp_path / "eval"
    base = ["--models", str(models_dir), "--dataset", str(MINI), "--out", str(out), "--quick", "--no-write-cards"]
    assert main(base) == 0
    first = json.loads((out / "metrics.json").read_text())
    assert main([*base, "--variants", "vae-z2", "--merge"]) == 0
    merged = json.loads((out / "metrics.json").read_text())
    assert list(merged["models"]) == list(first["models"])  # the others kept, in their order
    assert merged["models"]["cvae"] == first["models"]["cvae"] and merged["command"] == first["command"]
    assert merged["models"]["vae-z2"]["nll"] == first["models"]["vae-z2"]["nll"]  # same settings and seed
    assert [u["models"] for u in merged["updates"]] == [["vae-z2"]]
    assert "Updated by `python -m vae_hub.evaluate" in (out / "results.md").read_text()
    assert merged["models"]["vae-z2"]["training"]["epochs"] == 1
    with pytest.raises(SystemExit, match="nll_k"):  # rows from another protocol do not join the table
        main([*base, "--variants", "cvae", "--merge", "--nll-k", "50"])
    assert json.loads((out / "metrics.json").read_text()) == merged  # and nothing was overwritten


def test_literature_table_lists_our_binarized_models_with_their_cost():
    from vae_hub.evaluation.protocol import Settings
    from vae_hub.evaluation.report import LITERATURE, _literature_lines

    training = {"epochs": 32, "batch_size": 64, "seconds": 2700.0, "hardware": "CPU", "precision": "bf16",
                "objective": "IWAE k=8, DReG"}
    rows = {"iwae-bin": {"data": "binarized", "nll": 84.9, "nll_se": 0.3, "training": training},
            "vae-z20": {"data": "gray", "nll": 96.6, "nll_se": 0.3}}
    text = "\n".join(_literature_lines({"models": rows}, Settings()))
    assert "| `iwae-bin` (ours) | IWAE k=8, DReG | 32 epochs, batch 64, 45 min on CPU, bf16 autocast | 84.90 ± 0.30 |" in text
    assert "vae-z20" not in text and all(f"{v:.2f}" in text for _, _, v in LITERATURE)
    assert _literature_lines({"models": {"vae-z20": rows["vae-z20"]}}, Settings()) == []
    # with two of ours, the lower NLL is marked: the one to download for likelihood
    rows["conv-vae-bin"] = {"data": "binarized", "nll": 86.5, "nll_se": 0.3, "training": training}
    text = "\n".join(_literature_lines({"models": rows}, Settings()))
    assert "| `iwae-bin` (ours, best) |" in text and "| `conv-vae-bin` (ours) |" in text

import json

import pytest
import torch
from huggingface_hub import ModelCard

from vae_hub.evaluation.classifier import (
    ClassifierConfig,
    accuracy,
    is_classifier_folder,
    load_classifier,
    save_classifier,
    to_gray,
    train_classifier,
)
from vae_hub.hub.repo import bundled_dir


@pytest.fixture(scope="module")
def trained(mini, tmp_path_factory):
    folder = tmp_path_factory.mktemp("clf") / "mnist-classifier"
    model, hist = train_classifier(mini[0], mini[1], ClassifierConfig(epochs=1), log=lambda s: None)
    save_classifier(model, folder, hist, {"n_train": len(mini[0]), "seconds_total": 1.0, "hardware": "test"})
    return folder, model, hist


def test_learns_and_round_trips_without_pickle(trained, mini):
    folder, model, hist = trained
    assert hist[-1]["test_accuracy"] > 0.25  # one epoch on 600 digits: well above chance (0.1)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "history.json", "model.safetensors"]
    loaded = load_classifier(folder)
    assert not loaded.training and is_classifier_folder(folder)
    a, b = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    logits, feats = loaded.predict_features(mini[1].images[:5].float() / 255)
    assert logits.shape == (5, 10) and feats.shape == (5, 128) and (feats >= 0).all()
    assert accuracy(loaded, mini[1]) == pytest.approx(hist[-1]["test_accuracy"])
    card = ModelCard.load(folder / "README.md")
    assert card.data.eval_results[0].metric_value == pytest.approx(round(hist[-1]["test_accuracy"], 4))


def test_loading_rejects_other_folders(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="no classifier here"):
        load_classifier(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"variant": "vae-z2"}))
    (tmp_path / "model.safetensors").write_bytes((trained[0] / "model.safetensors").read_bytes())
    assert not is_classifier_folder(tmp_path)
    with pytest.raises(ValueError, match="not a vae-hub-mnist-classifier config"):
        load_classifier(tmp_path)


def test_to_gray_recovers_the_stroke_of_coloured_digits():
    x = torch.rand(3, 1, 28, 28)
    colours = torch.tensor([[1.0, 0.2, 0.5], [0.1, 1.0, 0.0], [0.3, 0.3, 1.0]])
    torch.testing.assert_close(to_gray(x * colours[:, :, None, None]), x)
    assert to_gray(x) is x


BUNDLED = bundled_dir() / "mnist-classifier"


@pytest.mark.skipif(not (BUNDLED / "model.safetensors").is_file(), reason="no bundled classifier in this checkout")
def test_bundled_classifier_reaches_99_percent(mini):
    """The card's full-test-split accuracy is >= 99%, and the shipped 1,000 test digits agree with it."""
    clf = load_classifier()
    hist = json.loads((BUNDLED / "history.json").read_text())
    assert hist["epochs"][-1]["test_accuracy"] >= 0.99
    assert accuracy(clf, mini[1]) >= 0.98

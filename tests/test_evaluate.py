"""Known answers for the evaluation metrics, and the trained classifier on real test digits."""
import json

import pytest
import torch

import evaluate


def test_frechet_distance_of_a_set_to_itself_is_zero_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(3000, 16, generator=g) @ torch.randn(16, 16, generator=g)
    assert evaluate.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    d1 = evaluate.frechet_distance(feats, feats + 1.0)
    d2 = evaluate.frechet_distance(feats, feats + 2.0)
    assert d1 == pytest.approx(16.0, rel=1e-6)  # a pure mean shift of 1 in 16 dims: ||shift||^2 = 16
    assert d2 == pytest.approx(64.0, rel=1e-6) and d2 > d1


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    """N(0, I) vs N(0, 4I) in d dims: Tr(I + 4I - 2*2I) = d."""
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(200000, 4, generator=g), 2 * torch.randn(200000, 4, generator=g)
    assert evaluate.frechet_distance(a, b) == pytest.approx(4.0, rel=0.03)


def test_frechet_distance_survives_collapsed_samples():
    feats = torch.zeros(100, 8)
    feats[:, 0] = torch.arange(100.0)
    value = evaluate.frechet_distance(feats, torch.ones(100, 8))
    assert value == value and value > 0  # finite, not NaN


def test_target_rate_and_histogram_on_hand_made_probabilities():
    labels = torch.tensor([6, 6, 9, 1, 6, 0, 9, 6])
    probs = torch.nn.functional.one_hot(labels, 10).float() * 0.9 + 0.01
    hist = evaluate.class_histogram(probs)
    assert hist[6] == 0.5 and hist[9] == 0.25 and hist[1] == hist[0] == 0.125 and hist.sum() == 1
    assert evaluate.target_rate(probs, [6]) == 0.5
    assert evaluate.target_rate(probs, [6, 9]) == 0.75
    assert evaluate.target_rate(probs, [3]) == 0.0
    assert evaluate.mean_confidence(probs) == pytest.approx(0.91)


def test_diversity_is_zero_for_copies_and_known_for_two_points():
    assert evaluate.mean_pairwise_distance(torch.ones(50, 3)) == pytest.approx(0.0)
    pair = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert evaluate.mean_pairwise_distance(pair) == pytest.approx(5.0)


@pytest.fixture(scope="module")
def full_classifier(data_dir, tmp_path_factory):
    """The evaluation classifier as alltests.py trains it (full training split, default epochs)."""
    import mnist
    data = mnist.load_mnist(data_dir)
    classifier, accuracy = evaluate.get_classifier(data, str(tmp_path_factory.mktemp("clf")), progress=False)
    return classifier, accuracy, data


def test_classifier_is_accurate_on_every_real_test_digit(full_classifier):
    classifier, accuracy, data = full_classifier
    assert accuracy >= 0.99
    predictions = evaluate.classify(classifier, data.test_x)[0].argmax(1)
    for digit in range(10):
        share = (predictions[data.test_y == digit] == digit).double().mean().item()
        assert share >= 0.98, (digit, share)


def test_quick_run_writes_results_with_every_field(quick_run):
    out, _ = quick_run
    results = json.load(open(out / "figures" / "results.json"))
    for key in ("goals", "n_samples", "seed", "sampling", "test_split", "classifier_test_accuracy", "config"):
        assert key in results
    sources = {(r["model"], r["source"]) for r in results["sampling"]}
    assert {("base", "N(0, I)"), ("goal", "own prior"), ("gmm", "own prior"), ("goal", "N(0, I)"),
            ("base (post-hoc)", "goal prior"), ("base (post-hoc)", "GMM prior"), ("test images", "real")} <= sources
    for row in results["sampling"]:
        assert set(row) >= {"target_rate", "class_histogram", "mean_confidence", "fd_goal", "fd_test", "diversity"}
        assert sum(row["class_histogram"]) == pytest.approx(1.0, abs=1e-3)
    for metrics in results["test_split"].values():
        assert set(metrics) >= {"recon", "recon_goal", "recon_other", "kl", "neg_elbo"}
    table = open(out / "figures" / "results.md").read()
    assert f"{results['sampling'][1]['target_rate']:.1%}" in table
    assert (out / "figures" / "class_histograms.png").exists()

"""Known answers for the evaluation metrics, and the classifier on real test images of both datasets."""
import json

import numpy as np
import pytest
import torch

import classifier
import datasets
import evaluate
import models


def features_with_exact_moments(mean, cov, n=500, seed=0):
    """n points whose sample mean and (n - 1)-normalised covariance are exactly `mean` and `cov`."""
    g = np.random.default_rng(seed)
    z = g.standard_normal((n, len(mean)))
    z -= z.mean(0)
    values, vectors = np.linalg.eigh(np.cov(z, rowvar=False))
    whitened = z @ vectors @ np.diag(values ** -0.5) @ vectors.T
    values, vectors = np.linalg.eigh(cov)
    return torch.from_numpy(whitened @ vectors @ np.diag(values ** 0.5) @ vectors.T + mean)


def psd_sqrt(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T


def test_frechet_distance_with_non_commuting_covariances_matches_the_closed_form():
    """||m_a - m_b||^2 + Tr(A + B - 2 (A^1/2 B A^1/2)^1/2), computed independently by eigendecompositions; the
    covariances do not commute, so sqrtm(A) @ sqrtm(B) in place of sqrtm(A @ B) gives another value."""
    cov_a = np.array([[4.0, 1.6, 0.0], [1.6, 1.0, 0.3], [0.0, 0.3, 0.5]])
    cov_b = np.array([[1.0, -0.9, 0.2], [-0.9, 4.0, 0.0], [0.2, 0.0, 0.7]])
    assert not np.allclose(cov_a @ cov_b, cov_b @ cov_a)
    mean_a, mean_b = np.array([0.0, 1.0, -1.0]), np.array([0.5, 0.0, 2.0])
    root_a = psd_sqrt(cov_a)
    expected = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b) - 2 * np.trace(psd_sqrt(root_a @ cov_b @ root_a))
    wrong = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root_a @ psd_sqrt(cov_b))
    assert abs(expected - wrong) > 0.05  # far beyond the 1e-8 tolerance below: the test tells the formulas apart
    got = evaluate.frechet_distance(features_with_exact_moments(mean_a, cov_a),
                                    features_with_exact_moments(mean_b, cov_b, seed=1))
    assert got == pytest.approx(expected, abs=1e-8)


def test_frechet_distance_of_a_set_to_itself_is_zero_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(3000, 16, generator=g) @ torch.randn(16, 16, generator=g)
    assert evaluate.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    assert evaluate.frechet_distance(feats, feats + 1.0) == pytest.approx(16.0, rel=1e-6)  # ||shift||^2


def test_frechet_distance_survives_collapsed_samples():
    feats = torch.zeros(100, 8)
    feats[:, 0] = torch.arange(100.0)
    value = evaluate.frechet_distance(feats, torch.ones(100, 8))
    assert value == value and value > 0  # finite, not NaN


def test_precision_recall_density_coverage_by_hand():
    """1-D, k = 1. Real {0, 1, 3, 10}: k-NN radii 1, 1, 2, 7. Fake {0.5, 2.9, 30, 31}: radii 2.4, 2.4, 1, 1.
    precision: 0.5 (ball of 0) and 2.9 (ball of 3) are inside a real ball, 30 and 31 are not: 2/4.
    density: 0.5 lies in the balls of 0 and 1, 2.9 in those of 3 and 10 (|2.9 - 10| = 7.1 > 7: no, only 3), so
    (2 + 1 + 0 + 0) / (k * 4) = 3/4.
    coverage: 0, 1 and 3 have a fake within their radius, 10 (nearest fake 2.9, 7.1 > 7) does not: 3/4.
    recall: 0, 1 and 3 lie in the balls of 0.5 or 2.9 (radius 2.4); 10 lies in none: 3/4."""
    real = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    fake = torch.tensor([[0.5], [2.9], [30.0], [31.0]])
    m = evaluate.precision_recall_density_coverage(real, fake, k=1)
    assert m == pytest.approx({"precision": 0.5, "recall": 0.75, "density": 0.75, "coverage": 0.75})
    # precision of (real, fake) is recall of (fake, real): the same ball test with the roles swapped
    swapped = evaluate.precision_recall_density_coverage(fake, real, k=1)
    assert swapped["recall"] == pytest.approx(m["precision"]) and swapped["precision"] == pytest.approx(m["recall"])


def prdc_by_definition(real, fake, k):
    """The four definitions as written in the papers, one point at a time (slow, plain Python)."""
    def kth(points, i):
        return sorted(float(np.linalg.norm(points[i] - q)) for j, q in enumerate(points) if j != i)[k - 1]
    real_radius = [kth(real, i) for i in range(len(real))]
    fake_radius = [kth(fake, j) for j in range(len(fake))]
    dist = lambda a, b: float(np.linalg.norm(a - b))  # noqa: E731
    precision = np.mean([any(dist(f, r) <= real_radius[i] for i, r in enumerate(real)) for f in fake])
    recall = np.mean([any(dist(r, f) <= fake_radius[j] for j, f in enumerate(fake)) for r in real])
    density = sum(dist(f, r) <= real_radius[i] for f in fake for i, r in enumerate(real)) / (k * len(fake))
    coverage = np.mean([min(dist(r, f) for f in fake) <= real_radius[i] for i, r in enumerate(real)])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def test_precision_recall_density_coverage_follow_their_definitions_on_random_points():
    g = np.random.default_rng(3)
    real, fake = g.normal(size=(40, 2)), g.normal(0.7, 1.3, size=(30, 2))
    expected = prdc_by_definition(real, fake, k=3)
    assert len({round(v, 6) for v in expected.values()}) == 4  # four different numbers: a swapped one shows
    got = evaluate.precision_recall_density_coverage(torch.from_numpy(real), torch.from_numpy(fake), k=3, chunk=7)
    assert got == pytest.approx(expected)


def test_coverage_sees_collapse_that_precision_does_not():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(1000, 8, generator=g)
    collapsed = real[:20].repeat(50, 1) + 0.01 * torch.randn(1000, 8, generator=g)  # 20 prototypes, copied
    m = evaluate.precision_recall_density_coverage(real, collapsed, k=5)
    assert m["precision"] > 0.99 and m["coverage"] < 0.2
    spread = evaluate.precision_recall_density_coverage(real, torch.randn(1000, 8, generator=g), k=5)
    assert spread["coverage"] > 0.8


def test_target_rate_and_histogram_on_hand_made_probabilities():
    labels = torch.tensor([6, 6, 9, 1, 6, 0, 9, 6])
    probs = torch.nn.functional.one_hot(labels, 10).float() * 0.9 + 0.01
    hist = evaluate.class_histogram(probs)
    assert hist[6] == 0.5 and hist[9] == 0.25 and hist[1] == hist[0] == 0.125 and hist.sum() == 1
    assert evaluate.target_rate(probs, [6]) == 0.5 and evaluate.target_rate(probs, [6, 9]) == 0.75
    assert evaluate.mean_confidence(probs) == pytest.approx(0.91)


def test_diversity_is_zero_for_copies_and_known_for_two_points():
    assert evaluate.mean_pairwise_distance(torch.ones(50, 3)) == pytest.approx(0.0)
    assert evaluate.mean_pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)


@pytest.mark.parametrize("dataset, floor", [("mnist", 0.8), ("fashion-mnist", 0.7)])
def test_classifier_learns_each_dataset(data_dir, dataset, floor):
    """One epoch on a 6,000-image subset already separates the classes (measured 87% and 76%; the full runs' test
    accuracies are in results.json, checked by test_readme.py)."""
    data = datasets.load(dataset, data_dir, train_images=6000)
    model = classifier.train_classifier(data, epochs=1, progress=False)
    assert classifier.accuracy(model, data.test_x, data.test_y) >= floor


def test_quick_run_writes_results_with_every_field(quick_run):
    out, _ = quick_run
    results = json.load(open(out / "figures" / "results.json"))
    for key in ("dataset", "goals", "n_samples", "sampling", "test_split", "classifier_test_accuracy", "config"):
        assert key in results
    assert results["reused"] == 0  # a run into an empty folder is from scratch, though its fine-tunes read its base
    sources = {(r["model"], r["source"]) for r in results["sampling"]}
    assert {("test images", "test"), ("test images, goal classes", "real"), ("decoder ceiling", "ceiling"),
            ("base", "standard"), ("goal VAE", "own-prior"), ("gmm VAE", "own-prior"), ("goal VAE", "standard"),
            ("gmm VAE, labelled-only KL", "own-prior")} <= sources
    assert {s for m, s in sources if m == "base + sampler"} == {"graph", "pseudo-label", "exemplar", "ratio", "goal-gmm",
                                                                "goal-gaussian"}
    for row in results["sampling"]:
        assert {"target_rate", "precision", "recall", "density", "coverage", "fd_goal", "diversity"} <= set(row)
        assert sum(row["class_histogram"]) == pytest.approx(1.0, abs=1e-3)
    ceiling = results["sampling"][2]
    assert ceiling["precision"] == 1.0 and ceiling["coverage"] == 1.0  # the ceiling set against itself
    assert (out / "figures" / "class_histograms.png").exists()


def test_every_alltests_row_is_an_evaluation_units_row(quick_run):
    """One evaluation path: alltests.py builds no row of its own; each is one that units.evaluation_unit (the
    study's) wrote under its identity in the run's models folder, and the sampler figures come from its images."""
    out, _ = quick_run
    results = json.load(open(out / "figures" / "results.json"))
    files = sorted((out / "models" / "units" / "evaluation").glob("*.json"))
    unit_rows = [row for path in files for row in json.load(open(path))["rows"]]
    as_text = lambda rows: sorted(json.dumps(row, sort_keys=True) for row in rows)  # noqa: E731
    assert len(results["sampling"]) == len(unit_rows) and as_text(results["sampling"]) == as_text(unit_rows)
    assert len(list((out / "models" / "units" / "evaluation").glob("*-images.pt"))) == len(results["label_budgets"])
    # each unit measured the decoder its rows name: the labelled-only GMM's rows, that checkpoint's
    saved = [json.load(open(path)) for path in files]
    decoders = {row["model"]: unit["identity"]["parents"].get("decoder") for unit in saved for row in unit["rows"]}
    for model, file_name in (("goal VAE", "goal.pt"), ("gmm VAE", "gmm.pt"),
                             ("gmm VAE, labelled-only KL", "gmm-labelled-only.pt")):
        assert decoders[model] == models.load_checkpoint(str(out / "models" / file_name))[2]["content_hash"], model
    assert decoders["base + sampler"] is None and decoders["decoder ceiling"] is None

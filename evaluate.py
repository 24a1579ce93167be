"""Does the bias work? Metrics of decoded samples, read off the independent classifier (classifier.py).

For every sampling source: the share of samples the classifier assigns to a goal class, the class histogram (where
the misses go), mean confidence, Frechet distances in the classifier's features (to real goal images and to the
whole test set), diversity, and precision / recall / density / coverage against the decoder ceiling: the base
VAE's reconstructions of the held-out goal test images, the best that any latent sampler on that decoder can do.
On the test split: reconstruction error, KL to the model's own prior, and its negative ELBO.
"""
import warnings

import numpy as np
import torch
from scipy import linalg

import constants
import losses
from errors import MeasurementError
from classifier import classify
from models import decode_prior_samples, encode_means, is_conditional


def class_histogram(probs):
    """Share of samples assigned to each class (argmax), [10]."""
    return torch.bincount(probs.argmax(1), minlength=constants.N_CLASSES).double() / len(probs)


def target_rate(probs, goals):
    """Share of samples the classifier assigns to any goal class."""
    return class_histogram(probs)[list(goals)].sum().item()


def mean_confidence(probs):
    return probs.max(1).values.double().mean().item()


# --- what counts as success (the issues' targets), and how samplers are ranked ---------------------------------
TARGET_GAP = 0.01  # from 10 labels a sampler "matches" the decoder ceiling: its target rate at most this far below
TARGET_QUALITY = 0.9  # ... and its precision and coverage against the ceiling set at least this
FEW_LABEL_SHARE, FEW_LABEL_COVERAGE = 0.95, 0.8  # from 1 label: this share of the ceiling's rate, this coverage
CEILING_SHARE = 0.95  # a decoder draws a class when its ceiling is this share of the classifier's rate on real images
CVAE_GAP = 0.02  # the best sampler from 10 labels within this of the fully labelled CVAE (units.CVAE_POSTERIORS)
PAIR_TARGET, PAIR_SPLIT = 0.97, (0.45, 0.55)  # two goals at once: goal images, and each goal's share of them


def quality(row):
    """How a sampler is ranked: its weakest of target rate, precision and coverage (a sampler that collapses onto
    a few prototypes has a high target rate and a low coverage, and ranks low)."""
    return min(row["target_rate"], row["precision"], row["coverage"])


def meets_target(row, ceiling):
    return row["target_rate"] >= ceiling["target_rate"] - TARGET_GAP and row["precision"] >= TARGET_QUALITY \
        and row["coverage"] >= TARGET_QUALITY


IMAGINARY_TOLERANCE = 1e-3  # pytorch-fid's bound on the imaginary part of sqrtm's diagonal


def _imaginary(matrix):
    return float(np.abs(np.diagonal(matrix).imag).max()) if np.iscomplexobj(matrix) else 0.0


def frechet_distance(features_a, features_b):
    """||m_a - m_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) between Gaussians fitted to two feature sets.

    The FID formula of Heusel et al. 2017 (eq. 6 of "GANs trained by a two time-scale update rule"),
    here in this project's own classifier features rather than Inception's.
    """
    a, b = features_a.double().numpy(), features_b.double().numpy()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # near-singular covariances (collapsed samples) are handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all() or _imaginary(covmean) > IMAGINARY_TOLERANCE:
            # as pytorch-fid does: a tiny ridge makes the product definite
            ridge = np.eye(len(cov_a)) * 1e-6
            covmean = linalg.sqrtm((cov_a + ridge) @ (cov_b + ridge))
    if _imaginary(covmean) > IMAGINARY_TOLERANCE:  # pytorch-fid raises here too: the distance would be wrong
        raise MeasurementError(f"Frechet distance: the matrix square root has an imaginary part of "
                               f"{_imaginary(covmean):.2g}")
    covmean = covmean.real  # what is left is rounding noise, at most IMAGINARY_TOLERANCE on the diagonal
    distance = float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))
    return max(distance, 0.0)  # a true distance is >= 0; rounding can leave -1e-12 for identical sets


def mean_pairwise_distance(features, chunk=2000):
    """Mean Euclidean distance over all distinct pairs: a diversity figure (0 for identical samples)."""
    features = features.double()
    total, n = 0.0, len(features)
    for i in range(0, n, chunk):
        total += torch.cdist(features[i:i + chunk], features).sum().item()
    return total / (n * (n - 1))


def kth_neighbour_distance(features, k, chunk=2000):
    """Each row's distance to its k-th nearest other row."""
    features = features.double()
    return torch.cat([torch.cdist(features[i:i + chunk], features).kthvalue(k + 1, dim=1).values
                      for i in range(0, len(features), chunk)])  # k + 1: the row itself is at distance 0


def precision_recall_density_coverage(real, fake, k=constants.PRDC_NEIGHBOURS, chunk=2000):
    """Manifold metrics in a feature space, each in [0, 1] (density can exceed 1):

    precision: share of fake samples inside some real sample's k-NN ball (Kynkaanniemi et al. 2019, eq. 2)
    recall:    share of real samples inside some fake sample's k-NN ball (Kynkaanniemi et al. 2019, eq. 2)
    density:   mean number of real k-NN balls holding a fake sample, over k (Naeem et al. 2020, eq. 5)
    coverage:  share of real samples whose k-NN ball holds a fake sample (Naeem et al. 2020, eq. 6)
    """
    real, fake = real.double(), fake.double()
    real_radius, fake_radius = kth_neighbour_distance(real, k), kth_neighbour_distance(fake, k)
    inside_real_balls, covered, recalled = 0, torch.zeros(len(real), dtype=torch.bool), \
        torch.zeros(len(real), dtype=torch.bool)
    precise = 0
    for i in range(0, len(fake), chunk):
        distance = torch.cdist(fake[i:i + chunk], real)  # [fake chunk, real]
        in_ball = distance <= real_radius[None, :]
        precise += in_ball.any(1).sum().item()
        inside_real_balls += in_ball.sum().item()
        covered |= in_ball.any(0)
        recalled |= (distance <= fake_radius[i:i + chunk, None]).any(0)
    return {"precision": precise / len(fake), "recall": recalled.double().mean().item(),
            "density": inside_real_balls / (k * len(fake)), "coverage": covered.double().mean().item()}


@torch.no_grad()
def ceiling_images(model, images):
    """The decoder ceiling: `model`'s reconstructions of `images` from their posterior means."""
    model.eval()
    device = next(model.parameters()).device
    z = encode_means(model, images)
    return torch.cat([model.decode(z[i:i + 1000]) for i in range(0, len(z), 1000)]).to(device)


class References:
    """What every row is measured against, computed once per (classifier, test split, goals, base decoder):
    the real test images, the real goal test images and the decoder ceiling, in the classifier's features."""

    def __init__(self, classifier, data, goals, base_model):
        self.goals = list(goals)
        self.test_probs, self.test_features = classify(classifier, data.test_x)
        self.goal_mask = torch.isin(data.test_y.cpu(), torch.tensor(self.goals))
        self.goal_features = self.test_features[self.goal_mask]
        self.ceiling_probs, self.ceiling_features = classify(classifier,
                                                             ceiling_images(base_model, data.test_x[self.goal_mask]))


def sample_metrics(probs, features, refs, k=constants.PRDC_NEIGHBOURS):
    """Every sampling metric of one set of samples (or real images), against References `refs`."""
    histogram = class_histogram(probs)
    return {
        "target_rate": histogram[refs.goals].sum().item(),
        "goal_rates": {str(g): histogram[g].item() for g in refs.goals},
        "class_histogram": [round(v, 5) for v in histogram.tolist()],
        "mean_confidence": mean_confidence(probs),
        "fd_goal": frechet_distance(features, refs.goal_features),
        "fd_test": frechet_distance(features, refs.test_features),
        "diversity": mean_pairwise_distance(features),
        **precision_recall_density_coverage(refs.ceiling_features, features, k),
        # against the real goal test images: recall here is the share of real goal images with a sample among
        # their neighbours, which blurred samples never are (issue 21's sharpness in a number)
        **{f"{name}_real": value for name, value in
           precision_recall_density_coverage(refs.goal_features, features, k).items()},
    }


def discovery(info, train_y):
    """What a sampler took as goal images (info["found"] of samplers.fit_sampler), scored with the labels it never
    saw: per goal, how many images, the share that truly are that goal (purity), and the share of that goal's
    training images that were found (recall)."""
    return {str(g): {"images": len(idx), "purity": (train_y[idx] == g).double().mean().item(),
                     "recall": ((train_y[idx] == g).sum() / (train_y == g).sum()).item()}
            for g, idx in info.get("found", {}).items()}


def per_class_ceiling(classifier, data, base_model):
    """For every class: the share of its real test images the classifier calls that class, and the same for the
    decoder ceiling (the base decoder's reconstructions of those images from their posterior means)."""
    labels = data.test_y.cpu()
    real = classify(classifier, data.test_x)[0].argmax(1)
    ceiling = classify(classifier, ceiling_images(base_model, data.test_x))[0].argmax(1)
    classes = range(int(labels.max()) + 1)
    return {"real": [(real[labels == c] == c).double().mean().item() for c in classes],
            "ceiling": [(ceiling[labels == c] == c).double().mean().item() for c in classes]}


def reference_rows(refs, k=constants.PRDC_NEIGHBOURS):
    """The metrics every table starts with, in this order: the real test images, the real goal test images, and the
    decoder ceiling."""
    return [sample_metrics(refs.test_probs, refs.test_features, refs, k),
            sample_metrics(refs.test_probs[refs.goal_mask], refs.goal_features, refs, k),
            sample_metrics(refs.ceiling_probs, refs.ceiling_features, refs, k)]


def measure_source(model, prior, classifier, refs, n, seed, k=constants.PRDC_NEIGHBOURS, labels=None):
    """sample_metrics of n images that `model` decodes from z ~ `prior` (a prior or a sampler), seeded;
    labels: the class of each image, for a ConditionalVAE. Returns (metrics, the images)."""
    torch.manual_seed(seed)
    images = decode_prior_samples(model, prior, n, labels=labels)
    probs, features = classify(classifier, images)
    return sample_metrics(probs, features, refs, k), images


def test_split_metrics(model, prior, beta, data, goals, seed=constants.SEED):
    """Reconstruction error (all, goal, other classes), KL to the own prior and negative ELBO on the test split,
    computed per image exactly as the validation loss is (losses.per_image_terms: one fixed-seed z per image)."""
    labels = data.test_y if is_conditional(model) else None
    recon, kl = losses.per_image_terms(model, prior, data.test_x, seed, labels=labels)
    goal_mask = torch.isin(data.test_y.cpu(), torch.tensor(goals))
    return {"recon": recon.mean().item(), "recon_goal": recon[goal_mask].mean().item(),
            "recon_other": recon[~goal_mask].mean().item(), "kl": kl.mean().item(),
            "neg_elbo": (recon + beta * kl).mean().item(), "beta": beta}

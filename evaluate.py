"""Does the bias work? An independent digit classifier and the metrics read off it.

For every model and sampling source: the share of samples the classifier calls a goal digit, the class
histogram, mean confidence, Frechet distances in the classifier's feature space (to real goal digits and
to the whole test set), and diversity. On the test split: reconstruction error, KL to the model's own
prior, and its negative ELBO.
"""
import math
import os
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import linalg
from tqdm import tqdm

import constants
import train
from models import StandardNormalPrior, decode_prior_samples, is_conditional


class DigitClassifier(nn.Module):
    """A small CNN; its 128-d penultimate layer is the feature space of the Frechet distance."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, 10))

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


def train_classifier(data, epochs=constants.CLASSIFIER_EPOCHS, lr=constants.CLASSIFIER_LR,
                     batch_size=constants.BATCH_SIZE, seed=constants.SEED, device="cpu", progress=True):
    """Cross-entropy with random +-2 pixel shifts and a one-cycle learning rate (Smith & Topin 2018)."""
    train.seed_everything(seed)
    model = DigitClassifier().to(device).to(memory_format=torch.channels_last)
    x = data.train_x.to(device).contiguous(memory_format=torch.channels_last)
    y = data.train_y.to(device)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=epochs * steps_per_epoch)
    shuffle = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=shuffle).to(device)
        shifts = torch.randint(-2, 3, (steps_per_epoch, 2), generator=shuffle).tolist()
        for step in tqdm(range(steps_per_epoch), desc=f"classifier epoch {epoch}/{epochs}", leave=False,
                         disable=not progress, mininterval=1.0):
            idx = order[step * batch_size:(step + 1) * batch_size]
            xb = torch.roll(x[idx], shifts=shifts[step], dims=(2, 3))  # translation augmentation
            loss = F.cross_entropy(model(xb), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.to(memory_format=torch.contiguous_format).eval()


@torch.inference_mode()
def classify(classifier, images, batch_size=2000):
    """(class probabilities [N, 10], penultimate features [N, 128]) for images [N, 1, 28, 28]."""
    device = next(classifier.parameters()).device
    classifier.eval()
    probs, feats = [], []
    for i in range(0, len(images), batch_size):
        f = classifier.features(images[i:i + batch_size].to(device))
        feats.append(f)
        probs.append(F.softmax(classifier.head(f), dim=1))
    return torch.cat(probs).cpu(), torch.cat(feats).cpu()


def accuracy(classifier, images, labels):
    return (classify(classifier, images)[0].argmax(1) == labels.cpu()).double().mean().item()


def classifier_identity(data, epochs, seed):
    return {"model": "classifier", "data": data.fingerprint, "epochs": epochs, "seed": seed,
            "lr": constants.CLASSIFIER_LR, "architecture": "DigitClassifier-16-32-128"}


def get_classifier(data, models_dir, epochs=constants.CLASSIFIER_EPOCHS, seed=constants.SEED, device="cpu",
                   retrain=False, log=print, progress=True):
    """Reuse models_dir/classifier.pt when it was trained on the same data and settings; else train it."""
    path = os.path.join(models_dir, "classifier.pt")
    identity = classifier_identity(data, epochs, seed)
    if os.path.exists(path) and not retrain:
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("identity") == identity:
                classifier = DigitClassifier()
                classifier.load_state_dict(saved["state_dict"])
                log(f"classifier: reusing {path} (test accuracy {saved['test_accuracy']:.4f})")
                return classifier.to(device).eval(), saved["test_accuracy"]
            log(f"classifier: {path} was trained with other settings: retraining")
        except Exception as error:  # unreadable or foreign file: retrain rather than trust it
            log(f"classifier: {path} cannot be loaded safely ({type(error).__name__}): retraining")
    classifier = train_classifier(data, epochs=epochs, seed=seed, device=device, progress=progress)
    test_accuracy = accuracy(classifier, data.test_x, data.test_y)
    train.atomic_torch_save({"identity": identity, "state_dict": classifier.state_dict(),
                             "test_accuracy": test_accuracy}, path)
    log(f"classifier: test accuracy {test_accuracy:.4f} -> {path}")
    return classifier, test_accuracy


# --- metrics -------------------------------------------------------------------------------------

def class_histogram(probs):
    """Share of samples assigned to each digit (argmax), [10]."""
    return torch.bincount(probs.argmax(1), minlength=10).double() / len(probs)


def target_rate(probs, goals):
    """Share of samples the classifier assigns to any goal digit."""
    return class_histogram(probs)[list(goals)].sum().item()


def mean_confidence(probs):
    return probs.max(1).values.double().mean().item()


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
        if not np.isfinite(covmean).all():  # as pytorch-fid does: a tiny ridge makes the product definite
            ridge = np.eye(len(cov_a)) * 1e-6
            covmean = linalg.sqrtm((cov_a + ridge) @ (cov_b + ridge))
    covmean = covmean.real  # numerical noise can leave tiny imaginary parts
    distance = float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))
    return max(distance, 0.0)  # a true distance is >= 0; rounding can leave -1e-12 for identical sets


def mean_pairwise_distance(features, chunk=2000):
    """Mean Euclidean distance over all distinct pairs: a diversity figure (0 for identical samples)."""
    features = features.double()
    total, n = 0.0, len(features)
    for i in range(0, n, chunk):
        total += torch.cdist(features[i:i + chunk], features).sum().item()
    return total / (n * (n - 1))


def sample_metrics(probs, features, goals, goal_features, test_features):
    return {
        "target_rate": target_rate(probs, goals),
        "class_histogram": [round(v, 5) for v in class_histogram(probs).tolist()],
        "mean_confidence": mean_confidence(probs),
        "fd_goal": frechet_distance(features, goal_features),
        "fd_test": frechet_distance(features, test_features),
        "diversity": mean_pairwise_distance(features),
    }


def sampling_sources(runs):
    """(model, source, decoder model, prior) for every row of the results table.

    Each fine-tuned model is sampled from N(0, I) (what the earlier implementation showed) and from its
    own prior; the post-hoc baseline feeds the untouched base decoder from the goal and GMM priors.
    """
    base_model, base_prior, _ = runs["base"]
    rows = [("base", "N(0, I)", base_model, base_prior)]
    for name in ("goal", "gmm"):
        model, prior, _ = runs[name]
        rows.append((name, "N(0, I)", model, StandardNormalPrior(model.latent_dim)))
        rows.append((name, "own prior", model, prior))
    rows.append(("base (post-hoc)", "goal prior", base_model, runs["goal"][1]))
    rows.append(("base (post-hoc)", "GMM prior", base_model, runs["gmm"][1]))
    return rows


def test_split_metrics(model, prior, beta, data, goals, seed=constants.SEED):
    """Reconstruction error (all, goal, other digits), KL to the own prior and negative ELBO on the test split,
    computed per image exactly as the validation loss is (train.per_image_terms: one fixed-seed z per image)."""
    labels = data.test_y if is_conditional(model) else None
    recon, kl = train.per_image_terms(model, prior, data.test_x, seed, labels=labels)
    goal_mask = torch.isin(data.test_y.cpu(), torch.tensor(goals))
    return {"recon": recon.mean().item(), "recon_goal": recon[goal_mask].mean().item(),
            "recon_other": recon[~goal_mask].mean().item(), "kl": kl.mean().item(),
            "neg_elbo": (recon + beta * kl).mean().item(), "beta": beta}


def evaluate(runs, classifier, data, cfg, n_samples=constants.EVAL_SAMPLES):
    """Every number of the results table, as a JSON-ready dict."""
    goals = cfg.goals
    test_probs, test_features = classify(classifier, data.test_x)
    goal_mask = torch.isin(data.test_y.cpu(), torch.tensor(goals))
    goal_features = test_features[goal_mask]
    # references: what real images score, all ten digits and the goal digits alone
    rows = [{"model": "test images", "source": "real",
             **sample_metrics(test_probs, test_features, goals, goal_features, test_features)},
            {"model": "test images, goal digits", "source": "real",
             **sample_metrics(test_probs[goal_mask], goal_features, goals, goal_features, test_features)}]
    for model_name, source, model, prior in sampling_sources(runs):
        torch.manual_seed(cfg.seed)
        images = decode_prior_samples(model, prior, n_samples)
        probs, features = classify(classifier, images)
        rows.append({"model": model_name, "source": source,
                     **sample_metrics(probs, features, goals, goal_features, test_features)})
    tests = {name: test_split_metrics(model, prior, cfg.beta(name), data, goals, cfg.seed)
             for name, (model, prior, _) in runs.items()}
    return {"goals": list(goals), "n_samples": n_samples, "seed": cfg.seed, "sampling": rows, "test_split": tests}


def results_markdown(results):
    """The two README tables, from a results dict."""
    goals = ", ".join(str(g) for g in results["goals"])
    lines = [f"Samples: {results['n_samples']:,} per row, seed {results['seed']}; goal digits: {goals}; "
             f"classifier test accuracy {results['classifier_test_accuracy']:.2%}.", "",
             "| model | z drawn from | target rate | mean confidence | FD to goal digits | FD to test set | diversity |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in results["sampling"]:
        lines.append(f"| {row['model']} | {row['source']} | {row['target_rate']:.1%} | {row['mean_confidence']:.3f} "
                     f"| {row['fd_goal']:.2f} | {row['fd_test']:.2f} | {row['diversity']:.2f} |")
    lines += ["", "| model (test split) | recon, all | recon, goal digits | recon, other digits "
                  "| KL to own prior | β | negative ELBO (own objective) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, m in results["test_split"].items():
        lines.append(f"| {name} | {m['recon']:.2f} | {m['recon_goal']:.2f} | {m['recon_other']:.2f} | {m['kl']:.2f} "
                     f"| {m['beta']:g} | {m['neg_elbo']:.2f} |")
    return "\n".join(lines) + "\n"

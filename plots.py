"""The README figures: samples, reconstructions, interpolations and latent-space views of one model.

Each function takes what it draws explicitly and writes one PNG atomically (temporary file, then
rename), so a failing run never leaves a half-written figure over a good one.
"""
import os
import textwrap

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

DIGIT_COLOURS = plt.get_cmap("tab10")
MAX_PAIR_DIMS = 8  # the pairwise grid shows at most this many latent dimensions


def save_figure(fig, path):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}.png"
    try:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def image_grid(images, path, title, ncols=8):
    """images: [N, 1, 28, 28] in [0, 1]."""
    images = images.detach().cpu().squeeze(1).numpy()
    nrows = int(np.ceil(len(images) / ncols))
    canvas = np.ones((nrows * 29 + 1, ncols * 29 + 1))
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[1 + r * 29:1 + r * 29 + 28, 1 + c * 29:1 + c * 29 + 28] = image
    fig, ax = plt.subplots(figsize=(ncols * 0.55, nrows * 0.55 + 0.4))
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return save_figure(fig, path)


def reconstructions(originals, recons, path, title):
    """Top row: test images; bottom row: their reconstructions."""
    n = len(originals)
    return image_grid(torch.cat([originals, recons]), path, title, ncols=n)


def interpolation(frames, path, title):
    return image_grid(frames, path, title, ncols=len(frames))


def latent_scatter(latents, labels, prior_samples, path, title, goals=()):
    """Test-set posterior means in dims 0-1, coloured by digit, with draws from the model's prior."""
    latents, labels = latents.cpu().numpy(), labels.cpu().numpy()
    fig, ax = plt.subplots(figsize=(6, 5))
    for digit in range(10):
        pts = latents[labels == digit]
        ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.5, color=DIGIT_COLOURS(digit),
                   label=f"{digit}{' (goal)' if digit in goals else ''}")
    prior_samples = prior_samples.cpu().numpy()
    ax.scatter(prior_samples[:, 0], prior_samples[:, 1], s=6, marker="x", color="black", alpha=0.35, label="prior")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title, fontsize=9)
    ax.legend(markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    return save_figure(fig, path)


def latent_pairs(latents, labels, path, title):
    """Pairwise scatter over the first MAX_PAIR_DIMS latent dims; histograms on the diagonal."""
    latents, labels = latents.cpu().numpy(), labels.cpu().numpy()
    dims = min(latents.shape[1], MAX_PAIR_DIMS)
    fig, axes = plt.subplots(dims, dims, figsize=(1.8 * dims + 0.5, 1.8 * dims + 0.5), squeeze=False)
    colours = DIGIT_COLOURS(labels)
    for i in range(dims):
        for j in range(dims):
            ax = axes[i, j]
            if i == j:
                ax.hist(latents[:, i], bins=40, color="grey")
            else:
                ax.scatter(latents[:, j], latents[:, i], s=1, c=colours, alpha=0.4)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == dims - 1:
                ax.set_xlabel(f"z[{j}]", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"z[{i}]", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def axes_per_dimension(dims, height, ncols=4):
    """A grid with one axis per latent dimension (up to ncols a row); spare cells are hidden."""
    ncols = min(dims, ncols)
    nrows = int(np.ceil(dims / ncols))
    fig, grid = plt.subplots(nrows, ncols, figsize=(3 * ncols, height * nrows), squeeze=False)
    for ax in grid.flat[dims:]:
        ax.axis("off")
    return fig, list(grid.flat[:dims])


def latent_histograms(latents, prior_samples, path, title):
    """Per-dimension histogram of test-set posterior means, with the prior's marginal (from samples)."""
    latents, prior_samples = latents.cpu().numpy(), prior_samples.cpu().numpy()
    fig, axes = axes_per_dimension(latents.shape[1], height=2.4)
    for d, ax in enumerate(axes):
        lo = min(latents[:, d].min(), np.percentile(prior_samples[:, d], 0.5))
        hi = max(latents[:, d].max(), np.percentile(prior_samples[:, d], 99.5))
        bins = np.linspace(lo, hi, 50)
        ax.hist(latents[:, d], bins=bins, density=True, alpha=0.6, color="tab:blue", label="encoder means (test)")
        ax.hist(prior_samples[:, d], bins=bins, density=True, histtype="step", color="black", label="prior")
        ax.set_title(f"z[{d}]", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def latent_qq(latents, path, title):
    """Q-Q plot of each latent dimension (test-set posterior means) against a standard normal."""
    latents = latents.cpu().numpy()
    fig, axes = axes_per_dimension(latents.shape[1], height=2.6)
    for d, ax in enumerate(axes):
        (theoretical, ordered), _ = stats.probplot(latents[:, d], dist="norm")
        ax.plot(theoretical, ordered, ".", markersize=2)
        lim = [theoretical.min(), theoretical.max()]
        ax.plot(lim, lim, "k--", linewidth=0.8)
        ax.set_title(f"z[{d}]", fontsize=9)
        ax.set_xlabel("N(0, 1) quantiles", fontsize=7)
        ax.set_ylabel("sample quantiles", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def training_curves(histories, path):
    """Validation loss per epoch of each run, on its own objective."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, history in histories.items():
        ax.plot([h["epoch"] for h in history], [h["val_loss"] for h in history], "o-", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (own objective)")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def class_histograms(rows, goals, path):
    """One bar chart per (model, source) row: the classifier's class shares, goal digits highlighted."""
    ncols = 4
    nrows = int(np.ceil(len(rows) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.3 * nrows), squeeze=False, sharey=True)
    colours = ["tab:red" if d in goals else "tab:grey" for d in range(10)]
    for ax, row in zip(axes.flat, rows):
        ax.bar(range(10), row["class_histogram"], color=colours)
        ax.set_xticks(range(10))
        ax.set_title(f"{row['model']}\nz ~ {row['source']}: {row['target_rate']:.0%} goal", fontsize=8)
        ax.axhline(0.1, color="black", linewidth=0.6, linestyle=":")
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle(f"classifier's digit shares (goal digits {', '.join(map(str, goals))} in red)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


# --- study.py ------------------------------------------------------------------------------------

def _mean_std(entry, key):
    return entry[key]["mean"], entry[key]["std"]


def study_tradeoff(grid, references, path, title):
    """Target rate against the two costs (test recon of the other digits, FD to real goal digits) over the
    beta grid, error bars over seeds; `references` (name -> summary entry) as single labelled markers."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = [("*", "tab:orange"), ("D", "tab:green"), ("s", "tab:red"), ("^", "tab:purple")]
    for ax, (cost, label) in zip(axes, (("recon_other", "test reconstruction error, non-goal digits"),
                                        ("fd_goal", "Fréchet distance to real goal digits"))):
        xs, xe = zip(*[_mean_std(e, cost) for e in grid])
        ys, ye = zip(*[_mean_std(e, "target_rate") for e in grid])
        ax.errorbar(xs, ys, xerr=xe, yerr=ye, marker="o", capsize=3, color="tab:blue", label="fine-tuned, β grid")
        for e, x, y in zip(grid, xs, ys):
            ax.annotate(f"β={e['beta']:g}", (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
        for (name, e), (marker, colour) in zip(references.items(), styles):
            if e is None:
                continue
            (x, xerr), (y, yerr) = _mean_std(e, cost), _mean_std(e, "target_rate")
            ax.errorbar([x], [y], xerr=[xerr], yerr=[yerr], marker=marker, markersize=9, linestyle="none",
                        capsize=3, color=colour, label=name)
        ax.set_xlabel(label)
        ax.set_ylabel("target rate (samples from the model's prior)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(title + " (mean ± sd over seeds)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def study_budget(curves, reference, path, title):
    """Target rate and FD to real goal digits against the number of labelled goal images, one line per
    method (name -> summary entries in budget order); the fully labelled CVAE as a dashed line."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (key, label) in zip(axes, (("target_rate", "target rate"), ("fd_goal", "Fréchet distance to real goal digits"))):
        for name, entries in curves.items():
            entries = [e for e in entries if e is not None]
            ns = [e["n_labels"] for e in entries]
            ys, ye = zip(*[_mean_std(e, key) for e in entries])
            ax.errorbar(ns, ys, yerr=ye, marker="o", capsize=3, label=name)
        if reference is not None:
            ax.axhline(reference[key]["mean"], color="black", linestyle="--", linewidth=1,
                       label="CVAE (every image labelled)")
        ax.set_xscale("log")
        ax.set_xlabel("expert-labelled goal images")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(title + " (mean ± sd over seeds)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def study_goal_sets(per_set, path):
    """For each goal set (tuple -> summary entries), the share of samples in each goal digit per method:
    a prior that produces only one of the goals shows one tall bar and one short one."""
    fig, axes = plt.subplots(1, len(per_set), figsize=(7.5 * len(per_set), 4.4), squeeze=False)
    for ax, (goals, entries) in zip(axes[0], per_set.items()):
        width = 0.8 / len(goals)
        for j, goal in enumerate(goals):
            means, stds = zip(*[_mean_std(e, f"rate_{goal}") for e in entries])
            ax.bar(np.arange(len(entries)) + (j - (len(goals) - 1) / 2) * width, means, width, yerr=stds,
                   capsize=3, color=DIGIT_COLOURS(goal), label=f"digit {goal}")
        ax.axhline(1 / len(goals), color="black", linestyle=":", linewidth=0.8)
        ax.set_xticks(np.arange(len(entries)))
        ax.set_xticklabels([textwrap.fill(e["method"], 16) for e in entries], fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of samples")
        ax.set_title(f"goal digits {', '.join(map(str, goals))} (dotted: an even split)", fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle("several goals at once: samples per goal digit (mean ± sd over seeds)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)

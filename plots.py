"""The README figures: samples, reconstructions, interpolations and latent-space views of one model.

Each function takes what it draws explicitly and writes one PNG atomically (temporary file, then
rename), so a failing run never leaves a half-written figure over a good one.
"""
import os
import textwrap

# no backend is forced: headless, matplotlib falls back to Agg by itself, and a notebook keeps its inline figures
import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import stats

DIGIT_COLOURS = plt.get_cmap("tab10")
MAX_PAIR_DIMS = 8  # the pairwise grid shows at most this many latent dimensions
PAIR_LAYERS = 5


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
    """images: [N, 1, H, W] in [0, 1], one pixel of white between them."""
    images = images.detach().cpu().squeeze(1).numpy()
    height, width = images.shape[1:]
    nrows = int(np.ceil(len(images) / ncols))
    canvas = np.ones((nrows * (height + 1) + 1, ncols * (width + 1) + 1))
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        top, left = 1 + r * (height + 1), 1 + c * (width + 1)
        canvas[top:top + height, left:left + width] = image
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
    for digit in np.unique(labels):
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
    size = 1.8 * dims + 0.5
    fig, axes = plt.subplots(dims, dims, figsize=(size, size), squeeze=False, gridspec_kw={"top": 1 - 0.5 / size})
    # each class in PAIR_LAYERS slices, drawn in turns, so that no class is drawn over all the others where they overlap
    layers = [(np.flatnonzero(labels == c)[k::PAIR_LAYERS], DIGIT_COLOURS(c)) for k in range(PAIR_LAYERS)
              for c in np.unique(labels)]
    for i in range(dims):
        for j in range(dims):
            ax = axes[i, j]
            if i == j:
                ax.hist(latents[:, i], bins=40, histtype="stepfilled", color="grey")
            else:
                # one marker line per class: Agg stamps one marker path, several times faster than a scatter with
                # a colour per point
                for members, colour in layers:
                    ax.plot(latents[members, j], latents[members, i], ".", markersize=1, alpha=0.4, color=colour)
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
    # a fixed layout: tight_layout measures every tick label again, and costs more than the drawing itself
    fig, grid = plt.subplots(nrows, ncols, figsize=(3 * ncols, height * nrows), squeeze=False,
                             gridspec_kw={"hspace": 0.55, "wspace": 0.3, "top": 1 - 0.6 / (height * nrows)})
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
        ax.hist(latents[:, d], bins=bins, density=True, histtype="stepfilled", alpha=0.6, color="tab:blue",
                label="encoder means (test)")  # one polygon, not a patch per bar: the same picture, faster
        ax.hist(prior_samples[:, d], bins=bins, density=True, histtype="step", color="black", label="prior")
        ax.set_title(f"z[{d}]", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
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
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.5 * nrows), squeeze=False, sharey=True,
                             gridspec_kw={"hspace": 0.95, "wspace": 0.1, "top": 1 - 1.2 / (2.5 * nrows)})
    classes = range(len(rows[0]["class_histogram"]))
    colours = ["tab:red" if d in goals else "tab:grey" for d in classes]
    for ax, row in zip(axes.flat, rows):
        ax.bar(classes, row["class_histogram"], color=colours)
        ax.set_xticks(classes)
        budget = f" ({row['labels']} labels)" if row.get("labels") else ""
        source = textwrap.shorten(f"z ~ {row['source']}{budget}", 48, placeholder="...")
        ax.set_title(f"{row['model']}\n{source}\n{row['target_rate']:.0%} goal", fontsize=8)
        ax.axhline(0.1, color="black", linewidth=0.6, linestyle=":")
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle(f"the classifier's class shares (goal classes {', '.join(map(str, goals))} in red)", fontsize=10)
    return save_figure(fig, path)


# --- study.py ------------------------------------------------------------------------------------

def study_classes(panels, path):
    """One panel per dataset (title -> (class names, {bar name: value per class})): grouped bars per class, the
    target rate of each bar series (the real images, each decoder's ceiling, the default sampler per budget)."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(15, 4.2 * len(panels)), squeeze=False)
    for ax, (title, (names, bars)) in zip(axes[:, 0], panels.items()):
        width = 0.85 / len(bars)
        for j, (label, values) in enumerate(bars.items()):
            ax.bar(np.arange(len(names)) + (j - (len(bars) - 1) / 2) * width, values, width, label=label)
        ax.set_xticks(np.arange(len(names)))
        ax.set_xticklabels(names, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("classified as the goal class")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=3, loc="lower left")
    fig.suptitle("every class as the goal: what the decoders draw of it, and what the default sampler draws from few "
                 "labels (the sampler: its worst label draw)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)

"""Training: the base / goal / GMM / CVAE runs (on the loop in fitting.py), their reuse by identity, the script.

    python train.py --model goal      # trains (or reuses) the base VAE, then fine-tunes the goal VAE
    python train.py --model gmm --expert-labels 10 --labelled-only-kl   # the bias-keeping variant, 10 labels
    python train.py --model cvae      # the conditional VAE the study compares against (needs every label)
"""
import copy
import math
import os

import torch

import cache
import cli
import config
import constants
import datasets
from config import ConfigError
from errors import CheckpointError
from fitting import fit, seed_everything
from checkpoints import (checkpoint_name, checkpoint_path, keep_before_replacing, kept_path, link_or_copy,
                         models_dir_for)
from models import (ConditionalVAE, ConvVAE, DiagonalGaussianPrior, GaussianMixturePrior, StandardNormalPrior,
                    encode_means, is_conditional, model_from_checkpoint, pick_device, save_checkpoint)

MODEL_NAMES = ("base", "goal", "gmm")  # the earlier implementation's three VAEs
TRAINABLE_MODELS = config.VAES  # plus the conditional VAE, the fully labelled reference


# --- the runs ----------------------------------------------------------------------------------

def labelled_kl_masks(cfg, data):
    """(train, val) bool masks of the expert-labelled goal images, for the labelled-only-KL variant.

    The validation split gets its own labelled goal images, the budget scaled by the split sizes and rounded up
    (10 labels: 10 + 2 validation at the default split), which early stopping uses: the model sees that many labels
    more than the samplers fitted from the same budget, and the README's label columns say so."""
    val_budget = None if cfg.expert_labels is None else math.ceil(cfg.expert_labels * len(data.val_y) / len(data.train_y))
    masks = []
    for labels, budget in ((data.train_y, cfg.expert_labels), (data.val_y, val_budget)):
        mask = torch.zeros(len(labels), dtype=torch.bool)
        mask[datasets.goal_indices(labels, cfg.goals, budget, cfg.label_draw)] = True
        masks.append(mask)
    return masks


def check_goal_data(cfg, data):
    """Fail before any training when the expert's labels cannot be drawn from the training split."""
    problem = datasets.budget_problem(data.dataset, data.train_y, cfg.goals, cfg.expert_labels)
    if problem:
        raise ConfigError(problem)


def goal_latents(model, data, goals, per_goal=None, seed=constants.SEED):
    """Posterior means of the base encoder over the expert-labelled training images (datasets.goal_indices)."""
    return encode_means(model, data.train_x[datasets.goal_indices(data.train_y, goals, per_goal, seed)])


def fit_prior(name, base_model, data, cfg):
    """The prior of run `name`: N(0, I) for base and cvae; fitted to the base model's goal latents otherwise."""
    if name in ("base", "cvae"):
        return StandardNormalPrior(cfg.latent_dim)
    latents = goal_latents(base_model, data, cfg.goals, cfg.expert_labels, cfg.label_draw).cpu()
    if name == "goal":
        return DiagonalGaussianPrior.fit(latents)
    return GaussianMixturePrior.fit(latents, cfg.gmm_components, cfg.gmm_covariance_type, cfg.gmm_reg_covar,
                                    cfg.seed, cfg.gmm_kl_samples)


def run_identity(name, cfg, data, parent=None):
    """The identity of run `name` (cache.identity); fine-tunes name their base checkpoint's content hash."""
    return cache.identity(name, cfg, data.fingerprint, {"base": parent["content_hash"]} if parent else None)


def train_run(name, cfg, data, device, base=None, progress=True, desc=None, on_epoch=None):
    """Train run `name` from scratch (base, cvae) or from `base` (goal, gmm: a (model, prior, checkpoint) triple);
    on_epoch as in fit. Returns (model, prior, history)."""
    if name in ("base", "cvae"):
        seed_everything(cfg.seed)
        architecture = ConvVAE if name == "base" else ConditionalVAE
        model = architecture(cfg.latent_dim, cfg.arch, cfg.likelihood, cfg.hidden, cfg.logvar_min,
                             cfg.logvar_max).to(device)
        base_model = None
    else:
        base_model = base[0]
        model = copy.deepcopy(base_model)  # goal and GMM VAEs start from the trained base weights
    prior = fit_prior(name, base_model, data, cfg)
    labels = (data.train_y, data.val_y) if is_conditional(model) else (None, None)
    masks = labelled_kl_masks(cfg, data) if name in config.FINETUNED and cfg.labelled_only_kl else (None, None)
    history = fit(model, prior, data.train_x, data.val_x, cfg, beta=cfg.beta(name), epochs=cfg.epochs(name),
                  desc=desc or name, progress=progress, train_labels=labels[0], val_labels=labels[1],
                  train_kl_mask=masks[0], val_kl_mask=masks[1], on_epoch=on_epoch)
    return model, prior.to(device), history


def reuse_checkpoint(path, identity, device, log, what):
    """(model, prior, checkpoint) from `path` when its stored identity equals `identity`; else None, with a
    one-line notice of what changed (cache.load_current)."""
    saved = cache.load_current(path, identity, what, log)
    if saved is None:
        return None
    try:
        return model_from_checkpoint(saved, path, device)
    except CheckpointError as error:
        log(f"{error}: retraining {what}")
        return None


def get_model(name, cfg, data, device, models_dir, retrain=False, log=print, progress=True):
    """Reuse models_dir/<checkpoint_name>.pt when its identity matches, or the kept checkpoint of these settings
    (kept_path), which becomes the latest again; otherwise train it (the goal and GMM VAEs start from the base,
    itself reused or trained first) and save it. The checkpoint it replaces is kept under its own identity.

    Returns (model, prior, checkpoint dict) with model and prior on `device`.
    """
    if name not in TRAINABLE_MODELS:
        raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(TRAINABLE_MODELS)}")
    cfg.validate()
    if name in config.FINETUNED:
        check_goal_data(cfg, data)
    base = get_model("base", cfg, data, device, models_dir, log=log, progress=progress) \
        if name in config.FINETUNED else None
    file_name = checkpoint_name(name, cfg)
    path = checkpoint_path(models_dir, file_name)
    identity = run_identity(name, cfg, data, base[2] if base else None)
    with cache.locked(path):  # another run on the same folder waits here, then reuses what this one trains
        found = None if retrain else reuse_checkpoint(path, identity, device, log, name)
        if found:
            return found
        kept = kept_path(models_dir, file_name, identity)
        found = None if retrain or not os.path.exists(kept) else reuse_checkpoint(kept, identity, device, log, name)
        keep_before_replacing(path, models_dir, file_name, identity, log)
        if found:  # trained before with these settings: it becomes the latest again
            try:
                link_or_copy(kept, path)
                log(f"{name}: {kept} -> {path}")
            except OSError as error:  # the model is found all the same
                log(f"{name}: using {kept} ({path} could not be replaced: {error.strerror or error})")
            return found
        model, prior, history = train_run(name, cfg, data, device, base, progress, desc=file_name)
        checkpoint = save_checkpoint(path, model, prior, identity, history)
    best = min(history, key=lambda h: h["val_loss"])
    log(f"{name}: best val loss {best['val_loss']:.3f} (recon {best['val_recon']:.3f}, kl {best['val_kl']:.3f}) "
        f"at epoch {best['epoch']} -> {path}")
    return model, prior, checkpoint


def main(argv=None):
    parser = cli.ArgumentParser(description="Train (or reuse) one VAE: base, goal, gmm or cvae.")
    parser.add_argument("--model", default="base", help="base, goal, gmm or cvae (default %(default)s)")
    parser.add_argument("--out-dir", default=constants.OUT_DIR,
                        help="checkpoints go to OUT_DIR/models[/<dataset>] (default %(default)r)")
    parser.add_argument("--retrain", action="store_true", help="train even when a matching checkpoint exists")
    cli.add_machine_arguments(parser)
    config.add_setting_flags(parser, config.VAES)
    args = parser.parse_args(argv)
    if args.model not in TRAINABLE_MODELS:
        raise ConfigError(f"unknown model {args.model!r}: choose one of {', '.join(TRAINABLE_MODELS)}")
    cfg = config.config_from_args(args)
    models_dir = models_dir_for(args.out_dir, cfg.dataset)
    cache.check_writable_folder(models_dir, "the checkpoint folder (--out-dir)")  # before the expensive work
    device = pick_device(args.device)
    data = datasets.load_for(cfg, args.data_dir)
    get_model(args.model, cfg, data, device, models_dir, retrain=args.retrain)


if __name__ == "__main__":
    cli.run_main(main)

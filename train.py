"""Training: one loop for every VAE, the base / goal / GMM / CVAE runs built on it, and their checkpoints.

    python train.py --model goal      # trains (or reuses) the base VAE, then fine-tunes the goal VAE
    python train.py --model gmm --expert-labels 10 --labelled-only-kl   # the bias-keeping variant, 10 labels
    python train.py --model cvae      # the conditional VAE the study compares against (needs every label)
"""
import copy
import math
import os
import random
import time

import numpy as np
import torch
from tqdm import tqdm

import cache
import cli
import config
import constants
import datasets
import losses
from config import ConfigError
from errors import CheckpointError, TrainingError
from models import (ConditionalVAE, ConvVAE, DiagonalGaussianPrior, GaussianMixturePrior, StandardNormalPrior,
                    encode_means, is_conditional, model_from_checkpoint, pick_device,
                    save_checkpoint)

MODEL_NAMES = ("base", "goal", "gmm")  # the earlier implementation's three VAEs
TRAINABLE_MODELS = config.VAES  # plus the conditional VAE, the fully labelled reference


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_schedule(optimizer, schedule, lr, warmup, total_steps, lr_patience):
    """(scheduler, steps per batch?): one-cycle steps every batch, plateau once per epoch on the validation loss."""
    if schedule == "one-cycle":
        # warm up from lr/25 to lr over `warmup` of the steps, then cosine-anneal to ~0: Smith & Topin 2018,
        # "Super-convergence: very fast training of neural networks using large learning rates"
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=total_steps, pct_start=warmup), True
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=lr_patience), False


def fit(model, prior, train_x, val_x, cfg, *, beta, epochs, desc="train", progress=True, train_labels=None,
        val_labels=None, train_kl_mask=None, val_kl_mask=None, on_epoch=None):
    """Minimise recon + beta * KL(q(z|x) || prior) with Adam; early-stop on the same objective on val_x.

    cfg: the run's settings (batch_size, lr, lr_schedule, warmup, patience, lr_patience, grad_clip, seed,
    channels_last); beta and epochs differ between a base run and a fine-tune, so they are given. train/val_labels:
    the class labels a ConditionalVAE is fed; train/val_kl_mask: the labelled-only-KL variant (True: KL to `prior`,
    False: KL to N(0, I)). on_epoch(entry): called after each epoch's validation; a true return value stops
    training. The model ends with its best-validation weights. Returns the per-epoch history.
    """
    started = time.perf_counter()
    device = next(model.parameters()).device
    prior = prior.to(device)
    seed, batch_size = cfg.seed, cfg.batch_size
    seed_everything(seed)
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    train_x = train_x.to(device).contiguous(memory_format=layout)
    val_x = val_x.to(device).contiguous(memory_format=layout)
    to_device = lambda t: None if t is None else t.to(device)  # noqa: E731
    train_labels, val_labels = to_device(train_labels), to_device(val_labels)
    train_kl_mask, val_kl_mask = to_device(train_kl_mask), to_device(val_kl_mask)
    # the fused kernel does the same Adam update in one pass over the parameters (measured faster on CPU)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=device.type in ("cpu", "cuda") or None)
    shuffle = torch.Generator().manual_seed(seed)
    n, n_batches = len(train_x), math.ceil(len(train_x) / batch_size)
    scheduler, per_batch = make_schedule(optimizer, cfg.lr_schedule, cfg.lr, cfg.warmup, epochs * n_batches,
                                         cfg.lr_patience)
    best_loss, best_state, epochs_without_gain, history = math.inf, None, 0, []

    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=shuffle).to(device)
        sums = torch.zeros(3, device=device)  # summed on device: no per-step .item() sync
        # the first step whose loss was not finite, kept on the device and read once per epoch: a check per step
        # would wait for the device at every step (on a GPU, the launch queue drains each time)
        first_bad = torch.full((), -1, dtype=torch.long, device=device)
        bar = tqdm(range(n_batches), desc=f"{desc} epoch {epoch}/{epochs}", leave=False, disable=not progress,
                   mininterval=1.0)
        for step in bar:
            idx = order[step * batch_size:(step + 1) * batch_size]
            xb = train_x[idx]
            logits, mu, logvar = model(xb) if train_labels is None else model(xb, train_labels[idx])
            loss, recon, kl = losses.vae_loss(xb, logits, mu, logvar, prior, beta,
                                              None if train_kl_mask is None else train_kl_mask[idx], model.likelihood)
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), step, first_bad)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            if per_batch:
                scheduler.step()
            sums += torch.stack([loss.detach(), recon.detach(), kl.detach()]) * len(xb)
            if progress and step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.2f}", recon=f"{recon.item():.2f}", kl=f"{kl.item():.2f}")
        if first_bad.item() >= 0:
            raise TrainingError(f"{desc}: the loss stopped being finite at epoch {epoch}, step {first_bad.item() + 1}; "
                                f"no checkpoint was written (try a smaller learning rate or beta)")
        train_loss, train_recon, train_kl = (sums / n).tolist()
        val = losses.objective(model, prior, val_x, beta, seed, labels=val_labels, kl_mask=val_kl_mask)
        if not math.isfinite(val["loss"]):
            raise TrainingError(f"{desc}: validation loss became {val['loss']} at epoch {epoch}; "
                                f"no checkpoint was written (try a smaller learning rate or beta)")
        if not per_batch:
            scheduler.step(val["loss"])
        entry = {"epoch": epoch, "train_loss": train_loss, "train_recon": train_recon, "train_kl": train_kl,
                 "val_loss": val["loss"], "val_recon": val["recon"], "val_kl": val["kl"],
                 "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started}
        history.append(entry)
        if progress:
            tqdm.write(f"{desc} epoch {epoch}: train {train_loss:.3f} (recon {train_recon:.3f}, kl {train_kl:.3f})"
                       f" | val {val['loss']:.3f} (recon {val['recon']:.3f}, kl {val['kl']:.3f})")
        if val["loss"] < best_loss:
            best_loss, best_state, epochs_without_gain = val["loss"], copy.deepcopy(model.state_dict()), 0
        else:
            epochs_without_gain += 1
        if epochs_without_gain >= cfg.patience or (on_epoch is not None and on_epoch(entry)):
            break
    model.load_state_dict(best_state)
    model.to(memory_format=torch.contiguous_format)
    return history


# --- checkpoints -------------------------------------------------------------------------------

def checkpoint_name(name, cfg):
    """The file name (without .pt) of run `name` in a models folder: the labelled-only variants get their own."""
    return f"{name}-labelled-only" if name in config.FINETUNED and cfg.labelled_only_kl else name


def checkpoint_path(models_dir, name):
    return os.path.join(models_dir, f"{name}.pt")


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
    """Reuse models_dir/<checkpoint_name>.pt when its identity matches; otherwise train it (the goal and GMM VAEs
    start from models_dir/base.pt, itself reused or trained first) and save it.

    Returns (model, prior, checkpoint dict) with model and prior on `device`.
    """
    if name not in TRAINABLE_MODELS:
        raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(TRAINABLE_MODELS)}")
    cfg.validate()
    if name in config.FINETUNED:
        check_goal_data(cfg, data)
    base = get_model("base", cfg, data, device, models_dir, log=log, progress=progress) \
        if name in config.FINETUNED else None
    path = checkpoint_path(models_dir, checkpoint_name(name, cfg))
    identity = run_identity(name, cfg, data, base[2] if base else None)
    with cache.locked(path):  # another run on the same folder waits here, then reuses what this one trains
        found = None if retrain else reuse_checkpoint(path, identity, device, log, name)
        if found:
            return found
        model, prior, history = train_run(name, cfg, data, device, base, progress, desc=checkpoint_name(name, cfg))
        checkpoint = save_checkpoint(path, model, prior, identity, history)
    best = min(history, key=lambda h: h["val_loss"])
    log(f"{name}: best val loss {best['val_loss']:.3f} (recon {best['val_recon']:.3f}, kl {best['val_kl']:.3f}) "
        f"at epoch {best['epoch']} -> {path}")
    return model, prior, checkpoint


def models_dir_for(out_dir, dataset):
    """Where a dataset's checkpoints live: OUT_DIR/models for the default dataset, OUT_DIR/models/<dataset> else."""
    return os.path.join(out_dir, "models", *([] if dataset == constants.DATASET else [dataset]))


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

"""The training loop every VAE here shares (base, goal, GMM, the CVAE, and the pseudo-labelled CVAE a sampler
fine-tunes): Adam on recon + beta * KL, early stopping on the validation objective, the best weights kept.

train.py builds the runs on it; samplers.py fine-tunes with it. Nothing here reads the command line.
"""
import copy
import math
import random
import time

import numpy as np
import torch
from tqdm import tqdm

import losses
from errors import TrainingError


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


PLATEAU_THRESHOLD = 0.01  # per image, in the objective's units: a smaller fall of the validation loss is a plateau


def make_schedule(optimizer, schedule, lr, warmup, total_steps, lr_patience):
    """(scheduler, steps per batch?): one-cycle steps every batch, plateau once per epoch on the validation loss."""
    if schedule == "one-cycle":
        # warm up from lr/25 to lr over `warmup` of the steps, then cosine-anneal to ~0: Smith & Topin 2018,
        # "Super-convergence: very fast training of neural networks using large learning rates"
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=total_steps, pct_start=warmup), True
    # an absolute threshold: torch's default is relative to the best loss, which turns lenient where the loss is
    # negative (the calibrated decoder's -log p(x|z) is)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=lr_patience,
                                                      threshold=PLATEAU_THRESHOLD, threshold_mode="abs"), False


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

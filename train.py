"""Training: one loop for all three VAEs, the base / goal / GMM runs built on it, and their checkpoints.

    python train.py --model goal      # trains (or reuses) the base VAE, then fine-tunes the goal VAE
    python train.py --model cvae      # the conditional VAE that study.py compares against (needs every label)
"""
import argparse
import copy
import math
import os
import random
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

import constants
import losses
import mnist
from models import (ARCHITECTURES, PRIORS, ConditionalVAE, ConvVAE, DeviceError, DiagonalGaussianPrior,
                    GaussianMixturePrior, StandardNormalPrior, encode_means, is_conditional, pick_device)

MODEL_NAMES = ("base", "goal", "gmm")  # the three VAEs of alltests.py and sample.py
TRAINABLE_MODELS = MODEL_NAMES + ("cvae",)  # plus the conditional VAE, the study's fully labelled reference
CHECKPOINT_FORMAT = 1


class ConfigError(ValueError):
    """A setting that cannot work (empty goals, negative beta, ...)."""


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be loaded safely."""


class TrainingError(RuntimeError):
    """Training diverged (NaN or inf loss)."""


USER_ERRORS = (ConfigError, CheckpointError, TrainingError, DeviceError, mnist.DataError)


@dataclass
class RunConfig:
    """Everything that decides what a run trains; defaults come from constants.py."""
    latent_dim: int = constants.LATENT_DIM
    goals: list = field(default_factory=lambda: list(constants.EXPERT_GOALS))
    expert_labels: int = constants.EXPERT_LABELS  # None: every goal image is labelled
    labelled_only_kl: bool = constants.LABELLED_ONLY_KL
    beta_base: float = constants.BETA_BASE
    beta_goal: float = constants.BETA_GOAL
    beta_gmm: float = constants.BETA_GMM
    gmm_components: int = constants.GMM_N_COMPONENTS
    gmm_covariance_type: str = constants.GMM_COVARIANCE_TYPE
    gmm_reg_covar: float = constants.GMM_REG_COVAR
    gmm_kl_samples: int = constants.GMM_KL_SAMPLES
    seed: int = constants.SEED
    batch_size: int = constants.BATCH_SIZE
    lr: float = constants.LEARNING_RATE
    epochs_base: int = constants.EPOCHS_BASE
    epochs_finetune: int = constants.EPOCHS_FINETUNE
    patience: int = constants.PATIENCE
    lr_patience: int = constants.LR_PATIENCE
    grad_clip: float = constants.GRAD_CLIP
    validation_split: float = constants.VALIDATION_SPLIT
    train_images: int = None  # None: all 54,000; a number: a subset (--quick, tests)
    channels_last: bool = constants.CHANNELS_LAST

    def validate(self):
        """Raise ConfigError with one readable line for the first setting that cannot work."""
        goals = self.goals if isinstance(self.goals, (list, tuple)) else [self.goals]
        if not goals:
            raise ConfigError("EXPERT_GOALS is empty: name at least one digit, e.g. --goals 6")
        for goal in goals:
            if isinstance(goal, bool) or not isinstance(goal, (int, np.integer)) or not 0 <= goal <= 9:
                raise ConfigError(f"expert goal {goal!r} is not a digit: goals must be integers 0-9")
        if len(set(goals)) != len(goals):
            raise ConfigError(f"expert goals {list(goals)} repeat a digit")
        checks = [
            (isinstance(self.latent_dim, int) and self.latent_dim >= 1, f"latent dim must be an integer >= 1, got {self.latent_dim!r}"),
            (self.gmm_components >= 1, f"GMM components must be >= 1, got {self.gmm_components}"),
            (self.gmm_covariance_type in ("full", "tied", "diag", "spherical"),
             f"GMM covariance type must be full, tied, diag or spherical, got {self.gmm_covariance_type!r}"),
            (self.gmm_kl_samples >= 1, f"GMM KL samples must be >= 1, got {self.gmm_kl_samples}"),
            (self.gmm_reg_covar > 0, f"GMM reg_covar must be > 0, got {self.gmm_reg_covar}"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}"),
            (self.epochs_base >= 1 and self.epochs_finetune >= 1,
             f"epochs must be >= 1, got {self.epochs_base} (base) and {self.epochs_finetune} (fine-tune)"),
            (self.lr > 0, f"learning rate must be > 0, got {self.lr}"),
            (self.patience >= 1 and self.lr_patience >= 0, "patience must be >= 1 and lr patience >= 0"),
            (self.grad_clip > 0, f"gradient clip must be > 0, got {self.grad_clip}"),
            (0 < self.validation_split < 1, f"validation split must lie in (0, 1), got {self.validation_split}"),
            (self.train_images is None or self.train_images >= 1, f"train images must be >= 1, got {self.train_images}"),
            (self.expert_labels is None or (isinstance(self.expert_labels, int) and self.expert_labels >= 1),
             f"expert labels must be an integer >= 1 (or None: all), got {self.expert_labels!r}"),
        ]
        for name in ("beta_base", "beta_goal", "beta_gmm"):
            value = getattr(self, name)
            checks.append((math.isfinite(value) and value >= 0, f"{name} must be a finite number >= 0, got {value}"))
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self.goals = sorted(int(g) for g in goals)
        return self

    def identity(self, name, data_fingerprint):
        """The settings a checkpoint of model `name` depends on: a mismatch means retrain."""
        ident = {"model": name, "data": data_fingerprint, "latent_dim": self.latent_dim, "seed": self.seed,
                 "batch_size": self.batch_size, "lr": self.lr, "epochs_base": self.epochs_base,
                 "patience": self.patience, "lr_patience": self.lr_patience, "grad_clip": self.grad_clip,
                 "beta_base": self.beta_base, "logvar_bounds": [constants.LOGVAR_MIN, constants.LOGVAR_MAX]}
        if name in ("goal", "gmm"):
            ident.update(goals=list(self.goals), epochs_finetune=self.epochs_finetune,
                         expert_labels=self.expert_labels, labelled_only_kl=self.labelled_only_kl)
        if name == "goal":
            ident.update(beta_goal=self.beta_goal)
        if name == "gmm":
            ident.update(beta_gmm=self.beta_gmm, gmm_components=self.gmm_components,
                         gmm_covariance_type=self.gmm_covariance_type, gmm_reg_covar=self.gmm_reg_covar,
                         gmm_kl_samples=self.gmm_kl_samples)
        return ident

    def beta(self, name):
        return {"base": self.beta_base, "cvae": self.beta_base, "goal": self.beta_goal, "gmm": self.beta_gmm}[name]


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def forked_rng(device):
    """Draws inside do not disturb the training stream (CPU and, when used, the CUDA device)."""
    devices = [device] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


@torch.inference_mode()
def per_image_terms(model, prior, images, seed=constants.SEED, batch_size=1000, labels=None, kl_mask=None):
    """(recon [N], kl [N]) of the objective for each image, with fixed noise: the reparameterised z and
    the GMM's Monte Carlo KL are random, and epochs (and models) should be compared like with like.

    labels: fed to a ConditionalVAE; kl_mask: the labelled-only-KL variant (losses.labelled_only_kl)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    recon, kl = [], []
    with forked_rng(device):
        torch.manual_seed(seed)
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            x_hat, mu, logvar = model(x) if labels is None else model(x, labels[i:i + batch_size].to(device))
            recon.append(losses.reconstruction_loss(x_hat, x))
            mask = None if kl_mask is None else kl_mask[i:i + batch_size].to(device)
            kl.append(losses.kl_term(prior, mu, logvar, mask))
    model.train(was_training)
    return torch.cat(recon).double().cpu(), torch.cat(kl).double().cpu()


def evaluate_objective(model, prior, images, beta, seed=constants.SEED, labels=None, kl_mask=None):
    """Mean loss = recon + beta * kl, with its two parts, on `images` (see per_image_terms)."""
    recon, kl = (t.mean().item() for t in per_image_terms(model, prior, images, seed, labels=labels, kl_mask=kl_mask))
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


def fit(model, prior, train_x, val_x, *, beta, epochs, batch_size=constants.BATCH_SIZE, lr=constants.LEARNING_RATE,
        patience=constants.PATIENCE, lr_patience=constants.LR_PATIENCE, grad_clip=constants.GRAD_CLIP,
        seed=constants.SEED, channels_last=constants.CHANNELS_LAST, desc="train", progress=True,
        train_labels=None, val_labels=None, train_kl_mask=None, val_kl_mask=None):
    """Minimise recon + beta * KL(q(z|x) || prior) with Adam; early-stop on the same objective on val_x.

    train/val_labels: the digit labels a ConditionalVAE is fed; train/val_kl_mask: the labelled-only-KL
    variant (True: KL to `prior`, False: KL to N(0, I)). The model ends with its best-validation weights.
    Returns the per-epoch history.
    """
    device = next(model.parameters()).device
    prior = prior.to(device)
    seed_everything(seed)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    train_x = train_x.to(device).contiguous(memory_format=layout)
    val_x = val_x.to(device).contiguous(memory_format=layout)
    to_device = lambda t: None if t is None else t.to(device)  # noqa: E731
    train_labels, val_labels = to_device(train_labels), to_device(val_labels)
    train_kl_mask, val_kl_mask = to_device(train_kl_mask), to_device(val_kl_mask)
    # the fused kernel does the same Adam update in one pass over the parameters (measured faster on CPU)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda") or None)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=lr_patience)
    shuffle = torch.Generator().manual_seed(seed)
    n, n_batches = len(train_x), math.ceil(len(train_x) / batch_size)
    best_loss, best_state, epochs_without_gain, history = math.inf, None, 0, []

    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=shuffle).to(device)
        sums = torch.zeros(3, device=device)  # summed on device: no per-step .item() sync
        bar = tqdm(range(n_batches), desc=f"{desc} epoch {epoch}/{epochs}", leave=False, disable=not progress,
                   mininterval=1.0)
        for step in bar:
            idx = order[step * batch_size:(step + 1) * batch_size]
            xb = train_x[idx]
            x_hat, mu, logvar = model(xb) if train_labels is None else model(xb, train_labels[idx])
            loss, recon, kl = losses.vae_loss(xb, x_hat, mu, logvar, prior, beta,
                                              None if train_kl_mask is None else train_kl_mask[idx])
            if not torch.isfinite(loss):
                raise TrainingError(f"{desc}: loss became {loss.item()} at epoch {epoch}, step {step + 1}; "
                                    f"no checkpoint was written (try a smaller learning rate or beta)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            sums += torch.stack([loss.detach(), recon.detach(), kl.detach()]) * len(xb)
            if progress and step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.2f}", recon=f"{recon.item():.2f}", kl=f"{kl.item():.2f}")
        train_loss, train_recon, train_kl = (sums / n).tolist()
        val = evaluate_objective(model, prior, val_x, beta, seed, labels=val_labels, kl_mask=val_kl_mask)
        scheduler.step(val["loss"])
        history.append({"epoch": epoch, "train_loss": train_loss, "train_recon": train_recon, "train_kl": train_kl,
                        "val_loss": val["loss"], "val_recon": val["recon"], "val_kl": val["kl"],
                        "lr": optimizer.param_groups[0]["lr"]})
        if progress:
            tqdm.write(f"{desc} epoch {epoch}: train {train_loss:.3f} (recon {train_recon:.3f}, kl {train_kl:.3f})"
                       f" | val {val['loss']:.3f} (recon {val['recon']:.3f}, kl {val['kl']:.3f})")
        if val["loss"] < best_loss:
            best_loss, best_state, epochs_without_gain = val["loss"], copy.deepcopy(model.state_dict()), 0
        else:
            epochs_without_gain += 1
            if epochs_without_gain >= patience:
                break
    model.load_state_dict(best_state)
    model.to(memory_format=torch.contiguous_format)
    return history


# --- checkpoints -------------------------------------------------------------------------------

def checkpoint_path(models_dir, name):
    return os.path.join(models_dir, f"{name}.pt")


def atomic_torch_save(obj, path):
    """Write to a temporary file beside `path`, then rename: an interrupted save never leaves a torn file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(path, model, prior, identity, history):
    """Write the checkpoint atomically and return what was written."""
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "architecture": {"class": type(model).__name__, "latent_dim": model.latent_dim},
        "identity": identity,
        "prior": {"kind": prior.kind, "args": prior.init_args()},
        "state_dict": model.state_dict(),
        "history": history,
    }
    atomic_torch_save(checkpoint, path)
    return checkpoint


def load_checkpoint(path, device="cpu"):
    """(model, prior, checkpoint dict) from a file written by save_checkpoint; tensors only, no pickled code."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}: train one with `python train.py --model "
                              f"{os.path.splitext(os.path.basename(path))[0]}`") from None
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path} is not a safe Biased VAE checkpoint ({first_line[:200]})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a Biased VAE checkpoint (format {CHECKPOINT_FORMAT})")
    arch = checkpoint.get("architecture", {})
    if arch.get("class") not in ARCHITECTURES:
        raise CheckpointError(f"{path} holds a {arch.get('class')!r} model, not one of {', '.join(ARCHITECTURES)}")
    try:
        model = ARCHITECTURES[arch["class"]](latent_dim=arch["latent_dim"])
        model.load_state_dict(checkpoint["state_dict"])
        prior = PRIORS[checkpoint["prior"]["kind"]](**checkpoint["prior"]["args"])
    except Exception as error:
        raise CheckpointError(f"{path} does not match this code's architecture "
                              f"({str(error).strip().splitlines()[0][:200]})") from None
    return model.to(device), prior.to(device), checkpoint


# --- the three runs ----------------------------------------------------------------------------

def labelled_goal_indices(labels, goals, budget=None, seed=constants.SEED):
    """Indices of the images the expert labelled as goals: all images whose label is in `goals`, or with a
    budget n, the first n of a seeded shuffle of them. Ascending, so a smaller budget is a subset of a larger."""
    indices = torch.isin(labels.cpu(), torch.tensor(goals)).nonzero().squeeze(1)
    if budget is None or budget >= len(indices):
        return indices
    order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))
    return indices[order[:budget]].sort().values


def labelled_kl_masks(cfg, data):
    """(train, val) bool masks of the expert-labelled goal images, for the labelled-only-KL variant.

    The validation split gets a label budget in proportion to its size, so early stopping sees no more labels
    than the expert gave."""
    val_budget = None if cfg.expert_labels is None else math.ceil(cfg.expert_labels * len(data.val_y) / len(data.train_y))
    masks = []
    for labels, budget in ((data.train_y, cfg.expert_labels), (data.val_y, val_budget)):
        mask = torch.zeros(len(labels), dtype=torch.bool)
        mask[labelled_goal_indices(labels, cfg.goals, budget, cfg.seed)] = True
        masks.append(mask)
    return masks


def check_goal_data(cfg, data):
    """Fail before any training when the goal images cannot support the goal and GMM priors."""
    for goal in cfg.goals:
        if not (data.train_y == goal).any():
            raise ConfigError(f"no training images of goal digit {goal}: nothing to fit the goal prior to")
    n_labelled = len(labelled_goal_indices(data.train_y, cfg.goals, cfg.expert_labels, cfg.seed))
    if cfg.gmm_components > n_labelled:
        raise ConfigError(f"GMM components ({cfg.gmm_components}) exceed the {n_labelled} expert-labelled goal "
                          f"training images")


def goal_latents(model, data, goals, budget=None, seed=constants.SEED):
    """Posterior means of the base encoder over the expert-labelled training images (labelled_goal_indices)."""
    return encode_means(model, data.train_x[labelled_goal_indices(data.train_y, goals, budget, seed)])


def fit_prior(name, base_model, data, cfg):
    """The prior of run `name`: N(0, I) for base and cvae; fitted to the base model's goal latents otherwise."""
    if name in ("base", "cvae"):
        return StandardNormalPrior(cfg.latent_dim)
    latents = goal_latents(base_model, data, cfg.goals, cfg.expert_labels, cfg.seed).cpu()
    if name == "goal":
        return DiagonalGaussianPrior.fit(latents)
    return GaussianMixturePrior.fit(latents, cfg.gmm_components, cfg.gmm_covariance_type, cfg.gmm_reg_covar,
                                    cfg.seed, cfg.gmm_kl_samples)


def get_model(name, cfg, data, device, models_dir, retrain=False, log=print, progress=True, checkpoint_name=None):
    """Reuse models_dir/<checkpoint_name or name>.pt when its config matches; otherwise train it (the goal and
    GMM VAEs start from models_dir/base.pt, trained first when needed) and save it.

    Returns (model, prior, checkpoint dict) with model and prior on `device`.
    """
    if name not in TRAINABLE_MODELS:
        raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(TRAINABLE_MODELS)}")
    cfg.validate()
    check_goal_data(cfg, data)
    path = checkpoint_path(models_dir, checkpoint_name or name)
    identity = cfg.identity(name, data.fingerprint)
    if os.path.exists(path) and not retrain:
        try:
            model, prior, checkpoint = load_checkpoint(path, device)
        except CheckpointError as error:
            log(f"{error}: retraining {name}")
        else:
            if checkpoint["identity"] == identity:
                log(f"{name}: reusing {path}")
                return model, prior, checkpoint
            changed = sorted(k for k in identity if checkpoint["identity"].get(k) != identity[k])
            log(f"{name}: {path} was trained with other settings ({', '.join(changed)}): retraining")

    if name in ("base", "cvae"):
        seed_everything(cfg.seed)
        model, base_model = (ConvVAE if name == "base" else ConditionalVAE)(cfg.latent_dim).to(device), None
    else:
        base_model = get_model("base", cfg, data, device, models_dir, retrain=False, log=log, progress=progress)[0]
        model = copy.deepcopy(base_model)  # goal and GMM VAEs start from the trained base weights
    prior = fit_prior(name, base_model, data, cfg)
    epochs = cfg.epochs_finetune if name in ("goal", "gmm") else cfg.epochs_base
    labels = (data.train_y, data.val_y) if is_conditional(model) else (None, None)
    masks = labelled_kl_masks(cfg, data) if name in ("goal", "gmm") and cfg.labelled_only_kl else (None, None)
    history = fit(model, prior, data.train_x, data.val_x, beta=cfg.beta(name), epochs=epochs,
                  batch_size=cfg.batch_size, lr=cfg.lr, patience=cfg.patience, lr_patience=cfg.lr_patience,
                  grad_clip=cfg.grad_clip, seed=cfg.seed, channels_last=cfg.channels_last,
                  desc=checkpoint_name or name, progress=progress, train_labels=labels[0], val_labels=labels[1],
                  train_kl_mask=masks[0], val_kl_mask=masks[1])
    checkpoint = save_checkpoint(path, model, prior, identity, history)
    best = min(history, key=lambda h: h["val_loss"])
    log(f"{name}: best val loss {best['val_loss']:.3f} (recon {best['val_recon']:.3f}, kl {best['val_kl']:.3f}) "
        f"at epoch {best['epoch']} -> {path}")
    return model, prior.to(device), checkpoint


# --- command line (shared by train.py, sample.py and alltests.py) ------------------------------

class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors on one line ("error: ... (see --help)"), exit code 2, like every other user error."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def add_machine_arguments(parser):
    """--device and --data-dir: where to compute and where MNIST lives (every script has them)."""
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: CUDA, then MPS, then CPU)")
    parser.add_argument("--data-dir", default=None, help=f"MNIST root holding MNIST/raw/ "
                        f"(default: ${constants.DATA_DIR_ENV}, else {constants.DATA_DIR!r})")
    return parser


def add_config_arguments(parser):
    """--flags that override constants.py; --help shows each default."""
    d = RunConfig()
    g = parser.add_argument_group("settings (defaults from constants.py)")
    g.add_argument("--goals", type=int, nargs="+", default=d.goals, help="expert goal digits (EXPERT_GOALS, default %(default)s)")
    g.add_argument("--expert-labels", type=int, default=d.expert_labels,
                   help="EXPERT_LABELS: how many goal images the expert labelled (default %(default)s: all)")
    g.add_argument("--labelled-only-kl", action="store_true", default=d.labelled_only_kl,
                   help="LABELLED_ONLY_KL: goal/GMM KL on the labelled goal images only, N(0, I) on the rest "
                        "(default %(default)s)")
    g.add_argument("--latent-dim", type=int, default=d.latent_dim, help="LATENT_DIM (default %(default)s)")
    g.add_argument("--epochs", type=int, default=None,
                   help=f"epochs for every model (default: EPOCHS_BASE={d.epochs_base}, EPOCHS_FINETUNE={d.epochs_finetune})")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="BATCH_SIZE (default %(default)s)")
    g.add_argument("--beta-base", type=float, default=d.beta_base, help="BETA_BASE (default %(default)s)")
    g.add_argument("--beta-goal", type=float, default=d.beta_goal, help="BETA_GOAL (default %(default)s)")
    g.add_argument("--beta-gmm", type=float, default=d.beta_gmm, help="BETA_GMM (default %(default)s)")
    g.add_argument("--gmm-components", type=int, default=d.gmm_components, help="GMM_N_COMPONENTS (default %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed, help="SEED (default %(default)s)")
    add_machine_arguments(g)
    g.add_argument("--retrain", action="store_true", help="train even when a matching checkpoint exists")
    return parser


def config_from_args(args, **overrides):
    cfg = RunConfig(latent_dim=args.latent_dim, goals=list(args.goals), batch_size=args.batch_size,
                    expert_labels=args.expert_labels, labelled_only_kl=args.labelled_only_kl,
                    beta_base=args.beta_base, beta_goal=args.beta_goal, beta_gmm=args.beta_gmm,
                    gmm_components=args.gmm_components, seed=args.seed, **overrides)
    if args.epochs is not None:
        cfg.epochs_base = cfg.epochs_finetune = args.epochs
    return cfg.validate()


def run_main(main):
    """Run a script's main(); a user error prints one line and exits 2, Ctrl-C exits 130."""
    try:
        main()
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished checkpoints and figures are untouched", file=sys.stderr)
        sys.exit(130)


def main(argv=None):
    parser = ArgumentParser(description="Train (or reuse) one VAE: base, goal, gmm or cvae.")
    parser.add_argument("--model", default="base", help="base, goal, gmm or cvae (default %(default)s)")
    parser.add_argument("--out-dir", default=constants.OUT_DIR, help="checkpoints go to OUT_DIR/models (default %(default)r)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    if args.model not in TRAINABLE_MODELS:
        raise ConfigError(f"unknown model {args.model!r}: choose one of {', '.join(TRAINABLE_MODELS)}")
    cfg = config_from_args(args)
    data = mnist.load_mnist(args.data_dir, validation_split=cfg.validation_split, seed=cfg.seed)
    device = pick_device(args.device)
    get_model(args.model, cfg, data, device, os.path.join(args.out_dir, "models"), retrain=args.retrain)


if __name__ == "__main__":
    run_main(main)

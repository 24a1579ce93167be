"""Training: one loop for all three VAEs, the base / goal / GMM runs built on it, and their checkpoints.

    python train.py --model goal      # trains (or reuses) the base VAE, then fine-tunes the goal VAE
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
from models import (PRIORS, ConvVAE, DeviceError, DiagonalGaussianPrior, GaussianMixturePrior, StandardNormalPrior,
                    encode_means, pick_device)

MODEL_NAMES = ("base", "goal", "gmm")
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
            ident.update(goals=list(self.goals), epochs_finetune=self.epochs_finetune)
        if name == "goal":
            ident.update(beta_goal=self.beta_goal)
        if name == "gmm":
            ident.update(beta_gmm=self.beta_gmm, gmm_components=self.gmm_components,
                         gmm_covariance_type=self.gmm_covariance_type, gmm_reg_covar=self.gmm_reg_covar,
                         gmm_kl_samples=self.gmm_kl_samples)
        return ident

    def beta(self, name):
        return {"base": self.beta_base, "goal": self.beta_goal, "gmm": self.beta_gmm}[name]


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def forked_rng(device):
    """Draws inside do not disturb the training stream (CPU and, when used, the CUDA device)."""
    devices = [device] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


@torch.inference_mode()
def per_image_terms(model, prior, images, seed=constants.SEED, batch_size=1000):
    """(recon [N], kl [N]) of the objective for each image, with fixed noise: the reparameterised z and
    the GMM's Monte Carlo KL are random, and epochs (and models) should be compared like with like."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    recon, kl = [], []
    with forked_rng(device):
        torch.manual_seed(seed)
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            x_hat, mu, logvar = model(x)
            recon.append(losses.reconstruction_loss(x_hat, x))
            kl.append(prior.kl(mu, logvar))
    model.train(was_training)
    return torch.cat(recon).double().cpu(), torch.cat(kl).double().cpu()


def evaluate_objective(model, prior, images, beta, seed=constants.SEED):
    """Mean loss = recon + beta * kl, with its two parts, on `images` (see per_image_terms)."""
    recon, kl = (t.mean().item() for t in per_image_terms(model, prior, images, seed))
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


def fit(model, prior, train_x, val_x, *, beta, epochs, batch_size=constants.BATCH_SIZE, lr=constants.LEARNING_RATE,
        patience=constants.PATIENCE, lr_patience=constants.LR_PATIENCE, grad_clip=constants.GRAD_CLIP,
        seed=constants.SEED, channels_last=constants.CHANNELS_LAST, desc="train", progress=True):
    """Minimise recon + beta * KL(q(z|x) || prior) with Adam; early-stop on the same objective on val_x.

    The model ends with its best-validation weights. Returns the per-epoch history.
    """
    device = next(model.parameters()).device
    prior = prior.to(device)
    seed_everything(seed)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    train_x = train_x.to(device).contiguous(memory_format=layout)
    val_x = val_x.to(device).contiguous(memory_format=layout)
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
            xb = train_x[order[step * batch_size:(step + 1) * batch_size]]
            x_hat, mu, logvar = model(xb)
            loss, recon, kl = losses.vae_loss(xb, x_hat, mu, logvar, prior, beta)
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
        val = evaluate_objective(model, prior, val_x, beta, seed)
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
    if arch.get("class") != ConvVAE.__name__:
        raise CheckpointError(f"{path} holds a {arch.get('class')!r} model, not a ConvVAE")
    try:
        model = ConvVAE(latent_dim=arch["latent_dim"])
        model.load_state_dict(checkpoint["state_dict"])
        prior = PRIORS[checkpoint["prior"]["kind"]](**checkpoint["prior"]["args"])
    except Exception as error:
        raise CheckpointError(f"{path} does not match this code's architecture "
                              f"({str(error).strip().splitlines()[0][:200]})") from None
    return model.to(device), prior.to(device), checkpoint


# --- the three runs ----------------------------------------------------------------------------

def check_goal_data(cfg, data):
    """Fail before any training when the goal images cannot support the goal and GMM priors."""
    for goal in cfg.goals:
        if not (data.train_y == goal).any():
            raise ConfigError(f"no training images of goal digit {goal}: nothing to fit the goal prior to")
    n_goal = int(torch.isin(data.train_y, torch.tensor(cfg.goals)).sum())
    if cfg.gmm_components > n_goal:
        raise ConfigError(f"GMM components ({cfg.gmm_components}) exceed the {n_goal} goal training images")


def goal_latents(model, data, goals):
    """Posterior means of the base encoder over the expert-labelled training images (label in goals)."""
    return encode_means(model, data.train_x[torch.isin(data.train_y, torch.tensor(goals))])


def fit_prior(name, base_model, data, cfg):
    """The prior of run `name`: N(0, I) for base; fitted to the base model's goal latents otherwise."""
    if name == "base":
        return StandardNormalPrior(cfg.latent_dim)
    latents = goal_latents(base_model, data, cfg.goals).cpu()
    if name == "goal":
        return DiagonalGaussianPrior.fit(latents)
    return GaussianMixturePrior.fit(latents, cfg.gmm_components, cfg.gmm_covariance_type, cfg.gmm_reg_covar,
                                    cfg.seed, cfg.gmm_kl_samples)


def get_model(name, cfg, data, device, models_dir, retrain=False, log=print, progress=True):
    """Reuse models_dir/<name>.pt when its config matches; otherwise train it (base first) and save it.

    Returns (model, prior, checkpoint dict) with model and prior on `device`.
    """
    if name not in MODEL_NAMES:
        raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}")
    cfg.validate()
    check_goal_data(cfg, data)
    path = checkpoint_path(models_dir, name)
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

    if name == "base":
        seed_everything(cfg.seed)
        model, base_model = ConvVAE(cfg.latent_dim).to(device), None
    else:
        base_model = get_model("base", cfg, data, device, models_dir, retrain=False, log=log, progress=progress)[0]
        model = copy.deepcopy(base_model)  # goal and GMM VAEs start from the trained base weights
    prior = fit_prior(name, base_model, data, cfg)
    epochs = cfg.epochs_base if name == "base" else cfg.epochs_finetune
    history = fit(model, prior, data.train_x, data.val_x, beta=cfg.beta(name), epochs=epochs,
                  batch_size=cfg.batch_size, lr=cfg.lr, patience=cfg.patience, lr_patience=cfg.lr_patience,
                  grad_clip=cfg.grad_clip, seed=cfg.seed, channels_last=cfg.channels_last, desc=name,
                  progress=progress)
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


def add_config_arguments(parser):
    """--flags that override constants.py; --help shows each default."""
    d = RunConfig()
    g = parser.add_argument_group("settings (defaults from constants.py)")
    g.add_argument("--goals", type=int, nargs="+", default=d.goals, help="expert goal digits (EXPERT_GOALS, default %(default)s)")
    g.add_argument("--latent-dim", type=int, default=d.latent_dim, help="LATENT_DIM (default %(default)s)")
    g.add_argument("--epochs", type=int, default=None,
                   help=f"epochs for every model (default: EPOCHS_BASE={d.epochs_base}, EPOCHS_FINETUNE={d.epochs_finetune})")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="BATCH_SIZE (default %(default)s)")
    g.add_argument("--beta-base", type=float, default=d.beta_base, help="BETA_BASE (default %(default)s)")
    g.add_argument("--beta-goal", type=float, default=d.beta_goal, help="BETA_GOAL (default %(default)s)")
    g.add_argument("--beta-gmm", type=float, default=d.beta_gmm, help="BETA_GMM (default %(default)s)")
    g.add_argument("--gmm-components", type=int, default=d.gmm_components, help="GMM_N_COMPONENTS (default %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed, help="SEED (default %(default)s)")
    g.add_argument("--device", default=None, help="cpu, cuda, mps (default: CUDA, then MPS, then CPU)")
    g.add_argument("--data-dir", default=None,
                   help=f"MNIST root holding MNIST/raw/ (default: ${constants.DATA_DIR_ENV}, else {constants.DATA_DIR!r})")
    g.add_argument("--retrain", action="store_true", help="train even when a matching checkpoint exists")
    return parser


def config_from_args(args, **overrides):
    cfg = RunConfig(latent_dim=args.latent_dim, goals=list(args.goals), batch_size=args.batch_size,
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
    parser = ArgumentParser(description="Train (or reuse) one VAE: base, goal or gmm.")
    parser.add_argument("--model", default="base", help="base, goal or gmm (default %(default)s)")
    parser.add_argument("--out-dir", default=constants.OUT_DIR, help="checkpoints go to OUT_DIR/models (default %(default)r)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    if args.model not in MODEL_NAMES:
        raise ConfigError(f"unknown model {args.model!r}: choose one of {', '.join(MODEL_NAMES)}")
    cfg = config_from_args(args)
    data = mnist.load_mnist(args.data_dir, validation_split=cfg.validation_split, seed=cfg.seed)
    device = pick_device(args.device)
    get_model(args.model, cfg, data, device, os.path.join(args.out_dir, "models"), retrain=args.retrain)


if __name__ == "__main__":
    run_main(main)

"""Draw samples of the goal classes into a .npy array.

    python sample.py --model base --sampler graph --labels 10 --n 1000 --out sixes.npy
    python sample.py --model goal --sampler own-prior --out goal.npy      # the earlier implementation's goal VAE
    python sample.py --model gmm --labelled-only-kl --labels 10 --out lo.npy   # the training-time method

writes float32 [n, 28, 28] in [0, 1]. A biased sampler (samplers.SAMPLERS) is fitted on the spot from the first
--labels images per goal class of a seeded shuffle of the training split (the expert's labels); `own-prior` and
`standard` draw from the checkpoint's own prior and from N(0, I). Models come from `python alltests.py` or
`python train.py`.
"""
import argparse
import os

import numpy as np
import torch

import cache
import cli
import config
import constants
import datasets
import samplers
import train
from config import ConfigError
from models import StandardNormalPrior, cycled_labels, decode_prior_samples, pick_device

PRIOR_SOURCES = ("own-prior", "standard")
SOURCES = samplers.SAMPLERS + PRIOR_SOURCES


def check_request(model, sampler, n):
    """One-line errors for a request that cannot work, before anything is loaded."""
    if model not in train.TRAINABLE_MODELS:
        raise ConfigError(f"unknown model {model!r}: choose one of {', '.join(train.TRAINABLE_MODELS)}")
    if sampler not in SOURCES:
        raise cli.SamplerError(f"unknown sampler {sampler!r}: choose one of {', '.join(SOURCES)}")
    if sampler in samplers.SAMPLERS and model != "base":
        raise cli.SamplerError(f"the {sampler} sampler draws from the base VAE's latent space: use --model base "
                               f"(the {model} model takes own-prior or standard)")
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")


REQUEST = ("goals", "expert_labels", "labelled_only_kl")  # what a sample is of: always checked against the model


def check_checkpoint_matches(checkpoint, model_name, cfg, path, asked=()):
    """A checkpoint is one file per model name: refuse one trained for another request than this one (a --labels 3
    request must not silently draw from the 10-label model). Checked: the goals, the label budget, the KL variant and
    every setting flag the user gave (`asked`), except --seed, which sets the draw."""
    stored = checkpoint.get("identity", {}).get("settings", {})
    wanted = cfg.for_artefact(model_name)
    checked = (set(REQUEST) | set(asked)) - {"seed"}
    changed = [name for name in wanted if name in checked and stored.get(name) != wanted[name]]
    if changed:
        found = ", ".join(f"{name} {stored.get(name)!r} there, {wanted[name]!r} asked" for name in changed)
        raise cli.CheckpointError(f"{path} was trained for another request ({found}): train it with "
                                  f"`python train.py --model {model_name}` and the same flags")


def draw(model_name, sampler, n, cfg, out_dir=constants.OUT_DIR, data_dir=None, device=None, log=print, asked=()):
    """[n, 28, 28] float32 images of the goal classes of `cfg`, decoded by the trained `model_name` from `sampler`;
    `asked`: the settings the user gave, which the checkpoint must have been trained with (own-prior, standard)."""
    check_request(model_name, sampler, n)
    device = pick_device(device)
    models_dir = train.models_dir_for(out_dir, cfg.dataset)
    path = train.checkpoint_path(models_dir, train.checkpoint_name(model_name, cfg))
    if not os.path.exists(path):
        flags = " --labelled-only-kl" if model_name in config.FINETUNED and cfg.labelled_only_kl else ""
        raise cli.CheckpointError(f"no trained {model_name} model at {path}: run `python alltests.py` or "
                                  f"`python train.py --model {model_name}{flags}` first")
    if sampler in samplers.SAMPLERS:
        model, source = samplers.load_sampler(sampler, path, cfg, data_dir, log)
    else:
        model, own_prior, checkpoint = train.load_checkpoint(path)
        check_checkpoint_matches(checkpoint, model_name, cfg, path, asked)
        source = own_prior if sampler == "own-prior" else StandardNormalPrior(model.latent_dim)
    model = model.to(device)
    labels = None
    if model_name == "cvae":  # the conditional VAE is told the goal class of every image
        labels = cycled_labels(cfg.goals, n)
    torch.manual_seed(cfg.seed)
    return decode_prior_samples(model, source, n, labels=labels).squeeze(1).cpu().numpy().astype(np.float32)


def main(argv=None):
    parser = cli.ArgumentParser(description="Draw samples of the goal classes into a .npy file.")
    parser.add_argument("--model", default="base", help="base, goal, gmm or cvae (default %(default)s)")
    parser.add_argument("--sampler", default=constants.SAMPLER,
                        help=f"{', '.join(SOURCES)} (default %(default)s, SAMPLER in constants.py)")
    parser.add_argument("--labels", dest="expert_labels", type=config.parse_count_or_all, default=argparse.SUPPRESS,
                        help=f"labelled images per goal class the sampler is fitted from, or all (the same as "
                             f"--expert-labels; default {constants.REPORT_LABEL_BUDGETS[0]} for a biased sampler)")
    parser.add_argument("--n", type=int, default=1000, help="number of samples (default %(default)s)")
    parser.add_argument("--out", default="samples.npy", help="output .npy file (default %(default)s)")
    parser.add_argument("--out-dir", default=constants.OUT_DIR,
                        help="where the run wrote its models/ folder (default %(default)r)")
    cli.add_machine_arguments(parser)
    config.add_setting_flags(parser, ("goal", "gmm", "sampler"))
    args = parser.parse_args(argv)
    check_request(args.model, args.sampler, args.n)
    if args.sampler in samplers.SAMPLERS and not hasattr(args, "expert_labels"):
        args.expert_labels = constants.REPORT_LABEL_BUDGETS[0]  # the README's headline: ten labels
    cfg = config.config_from_args(args)
    asked = [s.name for s in config.SETTINGS if hasattr(args, s.name)]
    images = draw(args.model, args.sampler, args.n, cfg, args.out_dir, args.data_dir, args.device, asked=asked)
    with cache.atomic_path(args.out) as tmp, open(tmp, "wb") as f:
        np.save(f, images)  # through a handle: np.save would add .npy to a bare path
    budget = "all" if cfg.expert_labels is None else cfg.expert_labels
    print(f"wrote {args.out}: {images.shape[0]} x 28 x 28 float32, {args.model} model, {args.sampler}"
          + (f" from {budget} labels per goal ({datasets.class_names(cfg.dataset, cfg.goals)})"
             if args.sampler in samplers.SAMPLERS else ""))


if __name__ == "__main__":
    cli.run_main(main)

"""Draw samples of the goal classes into a .npy array.

    python sample.py --model base --sampler graph --labels 10 --n 1000 --out sixes.npy
    python sample.py --model goal --sampler own-prior --out goal.npy      # the earlier implementation's goal VAE
    python sample.py --model gmm --labelled-only-kl --labels 10 --out lo.npy   # the training-time method

writes float32 [n, 28, 28] in [0, 1]. A biased sampler (samplers.REGISTRY) is fitted on the spot from the first
--labels images per goal class of a seeded shuffle of the training split (the expert's labels); `own-prior` and
`standard` draw from the checkpoint's own prior and from N(0, I). Models come from `python alltests.py` or
`python train.py`.
"""
import os
import shutil

import numpy as np
import torch

import cache
import cli
import config
import constants
import datasets
import samplers
from config import ConfigError
from checkpoints import checkpoint_name, checkpoint_path, kept_checkpoints, models_dir_for, training_command
from models import (StandardNormalPrior, check_checkpoint_serves, cycled_labels, decode_prior_samples, is_conditional,
                    load_checkpoint, pick_device)

PRIOR_SOURCES = ("own-prior", "standard")


def sources():
    """Every name --sampler takes: the registered samplers (samplers.REGISTRY), then the models' own priors."""
    return samplers.names() + PRIOR_SOURCES


def check_request(model, sampler, n):
    """One-line errors for a request that cannot work, before anything is loaded."""
    if model not in config.VAES:
        raise ConfigError(f"unknown model {model!r}: choose one of {', '.join(config.VAES)}")
    if sampler not in sources():
        raise cli.SamplerError(f"unknown sampler {sampler!r}: choose one of {', '.join(sources())}")
    if sampler in samplers.names() and model != "base":
        raise cli.SamplerError(f"the {sampler} sampler draws from the base VAE's latent space: use --model base "
                               f"(the {model} model takes own-prior or standard)")
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")


IMAGE_BYTES = constants.IMAGE_SIZE ** 2 * 4  # one float32 image in the output array
CHUNK = 10_000  # images decoded and written at a time: memory stays flat for any --n


def check_output(out, n):
    """Before any work: the output file can be written, and the disk has room for n images (one line otherwise)."""
    cache.check_writable(out, "--out")
    # the folder is made when the file is written: its disk is the nearest existing folder's
    free = shutil.disk_usage(cache.nearest_existing_folder(out)).free
    if n * IMAGE_BYTES > free:
        raise ConfigError(f"--n {n:,} needs {n * IMAGE_BYTES / 2 ** 30:,.1f} GiB for {out}, but its disk has "
                          f"{free / 2 ** 30:,.1f} GiB free")


def kept_serving(models_dir, file_name, model_name, cfg, asked):
    """The path of the newest checkpoint kept beside the latest one (checkpoints.kept_checkpoints) that serves the
    request (models.check_checkpoint_serves: the goals, labels and KL variant, and the settings the user gave);
    None when no kept checkpoint does."""
    for path in kept_checkpoints(models_dir, file_name):
        try:
            checkpoint = cache.load_tensors(path, cli.CheckpointError)
            check_checkpoint_serves(checkpoint, model_name, cfg, path, asked)
            return path
        except cli.CheckpointError:
            continue
    return None


def load_source(model_name, sampler, cfg, out_dir=constants.OUT_DIR, data_dir=None, log=print, asked=()):
    """(model, what z is drawn from): the trained `model_name` and `sampler` fitted for the goals of `cfg`. `asked`:
    the settings the user gave, which the checkpoint must have been trained with (models.check_checkpoint_serves).
    The latest checkpoint first; when it cannot serve the request, the newest kept one that can."""
    models_dir = models_dir_for(out_dir, cfg.dataset)
    file_name = checkpoint_name(model_name, cfg)
    path = checkpoint_path(models_dir, file_name)
    if not os.path.exists(path):
        raise cli.CheckpointError(f"no trained {model_name} model at {path}: run `python alltests.py` or "
                                  f"`{training_command(path, cfg, out_dir)}` first")
    try:
        return load_from(path, model_name, sampler, cfg, data_dir, log, asked)
    except cli.CheckpointError:
        kept = kept_serving(models_dir, file_name, model_name, cfg, asked)
        if kept is None:
            raise
        log(f"{path} was trained with other settings: using {kept}")
        return load_from(kept, model_name, sampler, cfg, data_dir, log, asked)


def load_from(path, model_name, sampler, cfg, data_dir, log, asked):
    """load_source for one checkpoint file."""
    if sampler in samplers.names():
        return samplers.load_sampler(sampler, path, cfg, data_dir, log, asked)
    model, own_prior, checkpoint = load_checkpoint(path)
    check_checkpoint_serves(checkpoint, model_name, cfg, path, asked)
    return model, own_prior if sampler == "own-prior" else StandardNormalPrior(model.latent_dim)


def draw_chunks(model, source, n, goals, seed, device, chunk=CHUNK):
    """Yield float32 arrays [m, IMAGE_SIZE, IMAGE_SIZE] in [0, 1], n images in all, decoded from z ~ source (seeded once); a
    conditional VAE is told the goal class of every image."""
    model = model.to(device)
    torch.manual_seed(seed)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        labels = cycled_labels(goals, m) if is_conditional(model) else None
        yield decode_prior_samples(model, source, m, labels=labels).squeeze(1).cpu().numpy().astype(np.float32)


def draw(model_name, sampler, n, cfg, out_dir=constants.OUT_DIR, data_dir=None, device=None, log=print, asked=()):
    """[n, IMAGE_SIZE, IMAGE_SIZE] float32 images of the goal classes of `cfg`, decoded by the trained `model_name` from `sampler`
    (in memory: the command line streams them to its file instead)."""
    check_request(model_name, sampler, n)
    model, source = load_source(model_name, sampler, cfg, out_dir, data_dir, log, asked)
    return np.concatenate(list(draw_chunks(model, source, n, cfg.goals, cfg.seed, pick_device(device))))


def main(argv=None):
    parser = cli.ArgumentParser(description=f"Draw samples of the goal classes into a .npy file. A biased sampler is "
                                            f"fitted from --labels (--expert-labels) images per goal class: "
                                            f"{constants.REPORT_LABEL_BUDGETS[0]} unless given.")
    parser.add_argument("--model", default="base", help="base, goal, gmm or cvae (default %(default)s)")
    parser.add_argument("--sampler", default=constants.SAMPLER,
                        help=f"{', '.join(sources())} (default %(default)s, SAMPLER in constants.py)")
    parser.add_argument("--n", type=int, default=1000, help="number of samples (default %(default)s)")
    parser.add_argument("--out", default="samples.npy", help="output .npy file (default %(default)s)")
    parser.add_argument("--out-dir", default=constants.OUT_DIR,
                        help="where the run wrote its models/ folder (default %(default)r)")
    cli.add_machine_arguments(parser)
    config.add_setting_flags(parser, ("goal", "gmm", "unlabelled", "sampler"))
    args = parser.parse_args(argv)
    check_request(args.model, args.sampler, args.n)
    if args.sampler in samplers.names() and not hasattr(args, "expert_labels"):
        args.expert_labels = constants.REPORT_LABEL_BUDGETS[0]  # the README's headline: ten labels
    cfg = config.config_from_args(args)
    asked = list(config.given_settings(args))
    check_output(args.out, args.n)  # before the expensive work
    device = pick_device(args.device)
    model, source = load_source(args.model, args.sampler, cfg, args.out_dir, args.data_dir, asked=asked)
    with cache.atomic_path(args.out) as tmp:
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(args.n, constants.IMAGE_SIZE, constants.IMAGE_SIZE))
        written = 0
        for part in draw_chunks(model, source, args.n, cfg.goals, cfg.seed, device):
            images[written:written + len(part)] = part
            written += len(part)
        images.flush()
        del images  # the memory map is closed before the file replaces --out
    budget = config.budget_name(cfg.expert_labels)
    print(f"wrote {args.out}: {args.n} x {constants.IMAGE_SIZE} x {constants.IMAGE_SIZE} float32, {args.model} model, {args.sampler}"
          + (f" from {budget} labels per goal ({datasets.class_names(cfg.dataset, cfg.goals)})"
             if args.sampler in samplers.names() else ""))


if __name__ == "__main__":
    cli.run_main(main)

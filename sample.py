"""Decode samples from a trained checkpoint into a .npy array.

    python sample.py --model goal --n 1000 --prior model --out samples.npy
writes float32 [n, 28, 28] in [0, 1], decoded from z ~ the checkpoint's own prior (--prior model)
or from N(0, I) (--prior standard).
"""
import os

import numpy as np
import torch

import constants
import train
from models import StandardNormalPrior, decode_prior_samples, pick_device

PRIOR_CHOICES = ("model", "standard")


def check_request(n, prior):
    if prior not in PRIOR_CHOICES:
        raise train.ConfigError(f"unknown prior {prior!r}: choose model or standard")
    if n < 1:
        raise train.ConfigError(f"--n must be >= 1, got {n}")


def draw(checkpoint, n, prior="model", seed=constants.SEED, device=None):
    """[n, 28, 28] float32 numpy images decoded from z ~ the chosen prior of a checkpoint file."""
    check_request(n, prior)
    device = pick_device(device)
    model, own_prior, _ = train.load_checkpoint(checkpoint, device)
    source = own_prior if prior == "model" else StandardNormalPrior(model.latent_dim)
    torch.manual_seed(seed)
    return decode_prior_samples(model, source, n).squeeze(1).cpu().numpy().astype(np.float32)


def main(argv=None):
    parser = train.ArgumentParser(description="Decode samples from a trained VAE checkpoint into a .npy file.")
    parser.add_argument("--model", default="goal", help="base, goal or gmm (default %(default)s)")
    parser.add_argument("--n", type=int, default=1000, help="number of samples (default %(default)s)")
    parser.add_argument("--prior", default="model", help="model (its own prior) or standard (N(0, I)); default %(default)s")
    parser.add_argument("--out", default="samples.npy", help="output .npy file (default %(default)s)")
    parser.add_argument("--seed", type=int, default=constants.SEED, help="SEED (default %(default)s)")
    parser.add_argument("--out-dir", default=constants.OUT_DIR,
                        help="where the run wrote its models/ folder (default %(default)r)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: CUDA, then MPS, then CPU)")
    args = parser.parse_args(argv)
    if args.model not in train.MODEL_NAMES:
        raise train.ConfigError(f"unknown model {args.model!r}: choose one of {', '.join(train.MODEL_NAMES)}")
    check_request(args.n, args.prior)
    path = train.checkpoint_path(os.path.join(args.out_dir, "models"), args.model)
    if not os.path.exists(path):
        raise train.CheckpointError(f"no trained {args.model} model at {path}: run `python train.py --model "
                                    f"{args.model}` (or `python alltests.py`) first")
    images = draw(path, args.n, args.prior, args.seed, args.device)
    tmp = f"{args.out}.tmp-{os.getpid()}.npy"
    np.save(tmp, images)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {images.shape[0]} x 28 x 28 float32 from the {args.model} model's "
          f"{'own' if args.prior == 'model' else 'N(0, I)'} prior")


if __name__ == "__main__":
    train.run_main(main)

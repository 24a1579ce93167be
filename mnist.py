"""MNIST as in-memory float32 tensors in [0, 1], read once through torchvision's real loader.

No mean/std normalisation: the decoder ends in a sigmoid and the loss is squared error in pixel space,
so the targets must live in [0, 1] too.
"""
import contextlib
import hashlib
import io
import os
from dataclasses import dataclass

import torch
import torchvision

import constants

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DataError(RuntimeError):
    """MNIST could not be found, downloaded or read."""


def resolve_data_dir(data_dir=None):
    """An explicit argument wins, then the environment variable, then constants.DATA_DIR."""
    return data_dir or os.environ.get(constants.DATA_DIR_ENV) or constants.DATA_DIR


def _missing_message(data_dir):
    raw = os.path.join(data_dir, "MNIST", "raw")
    return (f"MNIST not found in {raw}/ and it could not be downloaded: put the four files "
            f"{', '.join(RAW_FILES)} there, or point {constants.DATA_DIR_ENV} or --data-dir at a folder "
            f"that holds MNIST/raw/")


def read_mnist(data_dir, download=constants.DOWNLOAD):
    """The raw uint8 images [N, 28, 28] and int64 labels [N] of the train and test sets."""
    raw = os.path.join(data_dir, "MNIST", "raw")
    if not all(os.path.isfile(os.path.join(raw, name)) for name in RAW_FILES) and not download:
        raise DataError(_missing_message(data_dir))
    out = []
    for train in (True, False):
        try:
            # torchvision prints one line per failed mirror: keep the console to our single message
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                dataset = torchvision.datasets.MNIST(data_dir, train=train, download=download)
        except Exception as error:  # offline, unreadable folder, or a corrupt / truncated file
            if not all(os.path.isfile(os.path.join(raw, name)) for name in RAW_FILES):
                raise DataError(_missing_message(data_dir)) from None
            raise DataError(f"could not read MNIST in {raw}/ ({type(error).__name__}: {error}); "
                            f"the files may be corrupt or truncated: replace them") from None
        out += [dataset.data, dataset.targets]
    train_images, train_labels, test_images, test_labels = out
    expected = {"train": (60000, 28, 28), "test": (10000, 28, 28)}
    for split, images, labels in (("train", train_images, train_labels), ("test", test_images, test_labels)):
        if tuple(images.shape) != expected[split] or labels.shape != images.shape[:1]:
            raise DataError(f"MNIST {split} set in {raw}/ has shape {tuple(images.shape)}, expected {expected[split]}")
        if labels.min() < 0 or labels.max() > 9:
            raise DataError(f"MNIST {split} labels in {raw}/ fall outside 0-9: the label file is corrupt")
    return train_images, train_labels, test_images, test_labels


@dataclass
class MNISTSplits:
    """Images as float32 [N, 1, 28, 28] in [0, 1]; labels as int64 [N]."""
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    fingerprint: str  # identifies the exact images and split, stored in every checkpoint

    def to(self, device):
        moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in vars(self).items()}
        return MNISTSplits(**moved)


def _to_float(images):
    return (images.to(torch.float32) / 255.0).unsqueeze(1)


def load_mnist(data_dir=None, download=constants.DOWNLOAD, validation_split=constants.VALIDATION_SPLIT,
               seed=constants.SEED, train_images=None):
    """Train/validation split of the 60,000 training images (seeded), and the 10,000 test images.

    train_images: keep only this many training images (for --quick and tests); validation and test
    shrink in the same proportion. None keeps everything.
    """
    if not 0.0 < validation_split < 1.0:
        raise DataError(f"validation split must lie in (0, 1), got {validation_split}")
    data_dir = resolve_data_dir(data_dir)
    train_u8, train_y, test_u8, test_y = read_mnist(data_dir, download)

    order = torch.randperm(len(train_u8), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(len(train_u8) * validation_split))
    val_idx, train_idx = order[:n_val], order[n_val:]
    n_test = len(test_u8)
    if train_images is not None:
        if not 0 < train_images <= len(train_idx):
            raise DataError(f"train_images must lie in 1..{len(train_idx)}, got {train_images}")
        keep = train_images / len(train_idx)
        val_idx = val_idx[:max(1, int(len(val_idx) * keep))]
        train_idx = train_idx[:train_images]
        n_test = max(1, int(n_test * keep))

    digest = hashlib.sha1()
    for part in (train_u8, train_y, train_idx, val_idx):
        digest.update(part.contiguous().numpy().tobytes())
    return MNISTSplits(
        train_x=_to_float(train_u8[train_idx]), train_y=train_y[train_idx].clone(),
        val_x=_to_float(train_u8[val_idx]), val_y=train_y[val_idx].clone(),
        test_x=_to_float(test_u8[:n_test]), test_y=test_y[:n_test].clone(),
        fingerprint=f"{digest.hexdigest()[:16]}-n{n_test}",
    )

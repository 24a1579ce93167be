"""MNIST and Fashion-MNIST as in-memory float32 tensors in [0, 1], read once through torchvision's real loaders.

No mean/std normalisation: the decoder ends in a sigmoid and the loss is squared error in pixel space, so the
targets must live in [0, 1] too.
"""
import contextlib
import hashlib
import io
import os
import shutil
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
# name -> (torchvision class, the folder it reads under the data root, class names)
DATASETS = {
    "mnist": (torchvision.datasets.MNIST, "MNIST", [str(d) for d in range(10)]),
    # Xiao, Rasul & Vollgraf 2017, "Fashion-MNIST: a novel image dataset for benchmarking machine learning algorithms"
    "fashion-mnist": (torchvision.datasets.FashionMNIST, "FashionMNIST",
                      ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                       "ankle boot"]),
}
NAMES = tuple(DATASETS)


class DataError(RuntimeError):
    """A dataset could not be found, downloaded or read."""


def class_name(dataset, k):
    """How tables and figures name class k: '6' for MNIST, '7 sneaker' for Fashion-MNIST."""
    name = DATASETS[dataset][2][k]
    return name if name == str(k) else f"{k} {name}"


def class_names(dataset, classes):
    return " + ".join(class_name(dataset, k) for k in classes)


def resolve_data_dir(data_dir=None):
    """An explicit argument wins, then the environment variable, then constants.DATA_DIR."""
    return data_dir or os.environ.get(constants.DATA_DIR_ENV) or constants.DATA_DIR


def raw_folder(dataset, data_dir):
    return os.path.join(data_dir, DATASETS[dataset][1], "raw")


def _missing_message(dataset, data_dir):
    return (f"{dataset} not found in {raw_folder(dataset, data_dir)}/ and it could not be downloaded: put the four "
            f"files {', '.join(RAW_FILES)} there, or point {constants.DATA_DIR_ENV} or --data-dir at a folder that "
            f"holds {DATASETS[dataset][1]}/raw/")


def _remove_if_empty(folders):
    """Remove the folders a failed download made, when it left no file in them (outermost first in `folders`)."""
    for folder in folders:
        if os.path.isdir(folder) and not any(files for _, _, files in os.walk(folder)):
            shutil.rmtree(folder, ignore_errors=True)
            return


def read_raw(dataset, data_dir, download=constants.DOWNLOAD):
    """The raw uint8 images [N, 28, 28] and int64 labels [N] of the train and test sets."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}: choose one of {', '.join(NAMES)}")
    loader, _, _ = DATASETS[dataset]
    raw = raw_folder(dataset, data_dir)
    have_files = lambda: all(os.path.isfile(os.path.join(raw, name)) for name in RAW_FILES)  # noqa: E731
    if not have_files() and not download:
        raise DataError(_missing_message(dataset, data_dir))
    out = []
    folder = os.path.join(data_dir, DATASETS[dataset][1])
    made_here = [path for path in (data_dir, folder) if not os.path.exists(path)]  # what a failed download leaves
    for train in (True, False):
        try:
            # torchvision prints one line per failed mirror: keep the console to our single message
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                split = loader(data_dir, train=train, download=download)
        except Exception as error:  # offline, unreadable folder, or a corrupt / truncated file
            if not have_files():
                _remove_if_empty(made_here)
                raise DataError(_missing_message(dataset, data_dir)) from None
            raise DataError(f"could not read {dataset} in {raw}/ ({type(error).__name__}: {error}); "
                            f"the files may be corrupt or truncated: replace them") from None
        out += [split.data, split.targets]
    train_images, train_labels, test_images, test_labels = out
    side = constants.IMAGE_SIZE
    expected = {"train": (60000, side, side), "test": (10000, side, side)}  # both datasets: 60,000 + 10,000
    for name, images, labels in (("train", train_images, train_labels), ("test", test_images, test_labels)):
        if tuple(images.shape) != expected[name] or labels.shape != images.shape[:1]:
            raise DataError(f"{dataset} {name} set in {raw}/ has shape {tuple(images.shape)}, "
                            f"expected {expected[name]}")
        if labels.min() < 0 or labels.max() >= constants.N_CLASSES:
            raise DataError(f"{dataset} {name} labels in {raw}/ fall outside 0-{constants.N_CLASSES - 1}: the label file is "
                            "corrupt")
    return train_images, train_labels, test_images, test_labels


@dataclass
class Splits:
    """Images as float32 [N, 1, 28, 28] in [0, 1]; labels as int64 [N]."""
    dataset: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    fingerprint: str  # identifies the dataset, the exact images and the split: part of every cache identity

    def replace(self, **changes):
        return Splits(**{**vars(self), **changes})


def _to_float(images):
    return (images.to(torch.float32) / 255.0).unsqueeze(1)


def load(dataset=constants.DATASET, data_dir=None, download=constants.DOWNLOAD,
         validation_split=constants.VALIDATION_SPLIT, seed=constants.SEED, train_images=constants.TRAIN_IMAGES):
    """Train/validation split of the 60,000 training images (seeded), and the 10,000 test images.

    train_images: keep only this many training images (quick runs and tests); validation and test shrink in the
    same proportion. None keeps everything.
    """
    if not 0.0 < validation_split < 1.0:
        raise DataError(f"validation split must lie in (0, 1), got {validation_split}")
    train_u8, train_y, test_u8, test_y = read_raw(dataset, resolve_data_dir(data_dir), download)

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

    digest = hashlib.sha1(dataset.encode())
    for part in (train_u8, train_y, test_u8[:n_test], test_y[:n_test], train_idx, val_idx):
        digest.update(part.contiguous().numpy().tobytes())
    return Splits(
        dataset=dataset,
        train_x=_to_float(train_u8[train_idx]), train_y=train_y[train_idx].clone(),
        val_x=_to_float(train_u8[val_idx]), val_y=train_y[val_idx].clone(),
        test_x=_to_float(test_u8[:n_test]), test_y=test_y[:n_test].clone(),
        fingerprint=f"{dataset}-{digest.hexdigest()[:16]}",
    )


def load_for(cfg, data_dir=None, download=constants.DOWNLOAD):
    """The splits a run configuration (config.RunConfig) asks for."""
    return load(cfg.dataset, data_dir, download, cfg.validation_split, cfg.seed, cfg.train_images)


def goal_indices(labels, goals, per_goal=None, seed=constants.SEED):
    """Indices of the images the expert labelled: for each goal class, all its images, or with a budget n, the
    first n of a seeded shuffle of them. Ascending, and a smaller budget is a subset of a larger one."""
    labels = labels.cpu()
    chosen = []
    for goal in goals:
        indices = (labels == goal).nonzero().squeeze(1)
        if per_goal is not None and per_goal < len(indices):
            # one generator per (seed, goal): the draw of one goal does not depend on the others in the set
            order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed * 1000 + goal))
            indices = indices[order[:per_goal]]
        chosen.append(indices)
    return torch.cat(chosen).sort().values


def budget_problem(dataset, labels, goals, per_goal):
    """Why the expert cannot label per_goal images of each goal class in `labels`, or None when it can."""
    for goal in goals:
        available = int((labels == goal).sum())
        if available == 0:
            return f"no training images of {class_name(dataset, goal)} to label"
        if per_goal is not None and per_goal > available:
            return (f"{per_goal} labels per goal asked, but the training split holds only {available} images of "
                    f"{class_name(dataset, goal)}")
    return None

"""The real loaders on the real files (MNIST and Fashion-MNIST), their errors, and which images count as labelled."""
import os
import shutil

import pytest
import torch

import datasets


@pytest.mark.parametrize("dataset", datasets.NAMES)
def test_loader_gives_the_full_dataset_in_unit_range(data_dir, dataset):
    train_u8, train_y, test_u8, test_y = datasets.read_raw(dataset, data_dir, download=False)
    assert train_u8.shape == (60000, 28, 28) and test_u8.shape == (10000, 28, 28)
    assert set(train_y.unique().tolist()) == set(range(10)) == set(test_y.unique().tolist())
    test_counts = {"mnist": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009], "fashion-mnist": [1000] * 10}
    assert torch.bincount(test_y).tolist() == test_counts[dataset]
    data = datasets.load(dataset, data_dir, download=False)
    assert len(data.train_x) + len(data.val_x) == 60000 and len(data.test_x) == 10000 and len(data.val_x) == 6000
    for x in (data.train_x, data.val_x, data.test_x):
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
        assert x.min() == 0.0 and x.max() == 1.0
    # no mean/std normalisation: pixels keep their [0, 1] meaning (MNIST is mostly background, clothes less so)
    assert 0.1 < data.train_x.mean() < (0.15 if dataset == "mnist" else 0.4)
    assert data.fingerprint.startswith(dataset)


def test_the_two_datasets_never_share_a_fingerprint(data_dir):
    mnist, fashion = (datasets.load(name, data_dir, train_images=500) for name in datasets.NAMES)
    assert mnist.fingerprint != fashion.fingerprint
    assert not torch.equal(mnist.train_x, fashion.train_x)
    assert datasets.class_name("fashion-mnist", 7) == "7 sneaker" and datasets.class_name("mnist", 6) == "6"


def test_split_is_seeded_and_disjoint(data_dir):
    a, b = datasets.load("mnist", data_dir, seed=0), datasets.load("mnist", data_dir, seed=0)
    c = datasets.load("mnist", data_dir, seed=1)
    assert torch.equal(a.val_x, b.val_x) and a.fingerprint == b.fingerprint
    assert not torch.equal(a.val_x, c.val_x) and a.fingerprint != c.fingerprint
    train_rows = {bytes(row.numpy().tobytes()) for row in (a.train_x[:2000] * 255).to(torch.uint8)}
    assert not any(bytes(row.numpy().tobytes()) in train_rows for row in (a.val_x[:2000] * 255).to(torch.uint8))


@pytest.mark.parametrize("dataset, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_missing_data_offline_is_one_clear_error(tmp_path, dataset, folder):
    with pytest.raises(datasets.DataError, match=f"{folder}/raw.*train-images-idx3-ubyte.*t10k-labels-idx1-ubyte"):
        datasets.load(dataset, str(tmp_path), download=False)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_file_is_one_clear_error(tmp_path, data_dir, damage):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in datasets.RAW_FILES:
        shutil.copy(os.path.join(data_dir, "MNIST", "raw", name), raw / name)
    victim = raw / "train-images-idx3-ubyte"
    content = victim.read_bytes()
    victim.write_bytes(content[:len(content) // 2] if damage == "truncate" else b"\x00\x00\x08\x09" + content[4:])
    with pytest.raises(datasets.DataError, match="corrupt|shape|outside"):
        datasets.load("mnist", str(tmp_path), download=False)


def test_data_dir_setting_order(monkeypatch):
    monkeypatch.setenv("BIASED_VAE_DATA_DIR", "/from/env")
    assert datasets.resolve_data_dir("/explicit") == "/explicit"
    assert datasets.resolve_data_dir() == "/from/env"
    monkeypatch.delenv("BIASED_VAE_DATA_DIR")
    assert datasets.resolve_data_dir() == "data"


def test_labelled_images_are_the_goal_class_drawn_per_goal_and_nested(small_data):
    labels = small_data.train_y
    every = datasets.goal_indices(labels, [6, 9])
    assert torch.equal(every, torch.isin(labels, torch.tensor([6, 9])).nonzero().squeeze(1))
    ten, hundred = (datasets.goal_indices(labels, [6, 9], n, seed=3) for n in (10, 100))
    # a budget is per goal class: ten sixes and ten nines, never twenty of one
    assert torch.bincount(labels[ten], minlength=10)[[6, 9]].tolist() == [10, 10]
    assert torch.bincount(labels[hundred], minlength=10)[[6, 9]].tolist() == [100, 100]
    assert set(ten.tolist()) <= set(hundred.tolist()) <= set(every.tolist())
    assert torch.equal(ten, datasets.goal_indices(labels, [6, 9], 10, seed=3))
    assert not torch.equal(ten, datasets.goal_indices(labels, [6, 9], 10, seed=4))
    # the draw of one goal does not depend on the other goals asked for
    assert set(datasets.goal_indices(labels, [6], 10, seed=3).tolist()) <= set(ten.tolist())

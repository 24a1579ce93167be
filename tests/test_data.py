"""The real loader on the real files, and its errors."""
import os
import shutil

import pytest
import torch

import mnist


def test_loader_gives_the_full_dataset_in_unit_range(data_dir):
    train_u8, train_y, test_u8, test_y = mnist.read_mnist(data_dir, download=False)
    assert train_u8.shape == (60000, 28, 28) and test_u8.shape == (10000, 28, 28)
    assert set(train_y.unique().tolist()) == set(range(10)) == set(test_y.unique().tolist())
    data = mnist.load_mnist(data_dir, download=False)
    assert len(data.train_x) + len(data.val_x) == 60000 and len(data.test_x) == 10000
    assert len(data.val_x) == 6000
    for x in (data.train_x, data.val_x, data.test_x):
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
        assert x.min() == 0.0 and x.max() == 1.0
    # no mean/std normalisation: pixels keep their [0, 1] meaning
    assert 0.1 < data.train_x.mean() < 0.15


def test_split_is_seeded_and_disjoint(data_dir):
    a, b = mnist.load_mnist(data_dir, seed=0), mnist.load_mnist(data_dir, seed=0)
    c = mnist.load_mnist(data_dir, seed=1)
    assert torch.equal(a.val_x, b.val_x) and a.fingerprint == b.fingerprint
    assert not torch.equal(a.val_x, c.val_x) and a.fingerprint != c.fingerprint
    train_rows = {bytes(row.numpy().tobytes()) for row in (a.train_x[:2000] * 255).to(torch.uint8)}
    assert not any(bytes(row.numpy().tobytes()) in train_rows for row in (a.val_x[:2000] * 255).to(torch.uint8))


def test_missing_data_offline_is_one_clear_error(tmp_path):
    with pytest.raises(mnist.DataError, match="train-images-idx3-ubyte.*t10k-labels-idx1-ubyte"):
        mnist.load_mnist(str(tmp_path), download=False)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_file_is_one_clear_error(tmp_path, data_dir, damage):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in mnist.RAW_FILES:
        shutil.copy(os.path.join(data_dir, "MNIST", "raw", name), raw / name)
    victim = raw / "train-images-idx3-ubyte"
    content = victim.read_bytes()
    victim.write_bytes(content[:len(content) // 2] if damage == "truncate" else b"\x00\x00\x08\x09" + content[4:])
    with pytest.raises(mnist.DataError, match="corrupt|shape|outside"):
        mnist.load_mnist(str(tmp_path), download=False)


def test_data_dir_setting_order(monkeypatch):
    monkeypatch.setenv("BIASED_VAE_DATA_DIR", "/from/env")
    assert mnist.resolve_data_dir("/explicit") == "/explicit"
    assert mnist.resolve_data_dir() == "/from/env"
    monkeypatch.delenv("BIASED_VAE_DATA_DIR")
    assert mnist.resolve_data_dir() == "data"

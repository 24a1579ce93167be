"""The command-line scripts, run as a user runs them."""
import json
import os

import numpy as np

import alltests
from conftest import run_script


def test_quick_run_writes_every_figure(quick_run):
    out, result = quick_run
    figures = os.listdir(out / "figures")
    expected = [f for name in ("base", "goal", "gmm") for f in alltests.figure_names(name, 4)]
    assert len(expected) == 24
    missing = [f for f in expected + ["training_curves.png"] if f not in figures]
    assert not missing, missing
    for f in expected:
        assert os.path.getsize(out / "figures" / f) > 2000  # a real PNG, not an empty file
    summary = json.load(open(out / "figures" / "results.json"))
    assert set(summary["best_validation"]) == {"base", "goal", "gmm"}
    for name in ("base", "goal", "gmm"):
        assert os.path.exists(out / "models" / f"{name}.pt")


def test_sample_writes_the_documented_array(quick_run, tmp_path):
    out, _ = quick_run
    arrays = {}
    for prior in ("model", "standard"):
        target = tmp_path / f"{prior}.npy"
        result = run_script("sample.py", "--model", "gmm", "--n", "50", "--prior", prior, "--out", str(target),
                            "--out-dir", str(out), "--seed", "3")
        assert result.returncode == 0, result.stderr
        arrays[prior] = np.load(target)
        assert arrays[prior].shape == (50, 28, 28) and arrays[prior].dtype == np.float32
        assert arrays[prior].min() >= 0 and arrays[prior].max() <= 1
    assert not np.allclose(arrays["model"], arrays["standard"])
    again = tmp_path / "again.npy"
    run_script("sample.py", "--model", "gmm", "--n", "50", "--out", str(again), "--out-dir", str(out), "--seed", "3")
    np.testing.assert_array_equal(np.load(again), arrays["model"])


def test_sample_without_checkpoint_names_the_training_command(tmp_path):
    result = run_script("sample.py", "--model", "goal", "--out-dir", str(tmp_path), "--out", str(tmp_path / "x.npy"))
    assert result.returncode == 2
    assert "python train.py --model goal" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.npy").exists()


def test_missing_data_is_one_line_and_non_zero(tmp_path):
    # a dead local proxy makes torchvision's download fail at once, online or not
    dead_proxy = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                  "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    result = run_script("train.py", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path), env=dead_proxy)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "MNIST/raw" in lines[0] and "train-images-idx3-ubyte" in lines[0], lines
    assert not (tmp_path / "models").exists()

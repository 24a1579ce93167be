"""The command-line scripts, run as a user runs them."""
import json
import os

import numpy as np

import alltests
import constants
import samplers
from conftest import run_main_in_process, run_script


def test_quick_run_writes_every_figure(quick_run):
    out, _ = quick_run
    figures = os.listdir(out / "figures")
    expected = [f for name in ("base", "goal", "gmm") for f in alltests.figure_names(name, 4)]
    expected += [f"sampler_{name}_{budget}.png" for name in samplers.names() for budget in ("10", "all")]
    missing = [f for f in expected + ["training_curves.png", "class_histograms.png"] if f not in figures]
    assert not missing, missing
    for f in expected:
        assert os.path.getsize(out / "figures" / f) > 2000  # a real PNG, not an empty file
    summary = json.load(open(out / "figures" / "results.json"))
    assert set(summary["best_validation"]) == {"base", "goal", "gmm", "gmm, labelled-only KL"}
    for name in ("base", "goal", "gmm", "gmm-labelled-only", "classifier", "unlabelled"):
        assert os.path.exists(out / "models" / f"{name}.pt")


def test_sample_draws_goal_images_from_the_documented_command(quick_run, tmp_path):
    out, _ = quick_run
    arrays = {}
    for name, extra in (("graph", ["--labels", "10"]), ("exemplar", ["--labels", "3"]), ("own-prior", [])):
        target = tmp_path / f"{name}.npy"
        model = "base" if name in samplers.names() else "goal"
        args = ["--model", model, "--sampler", name, *extra, "--n", "50", "--out", str(target), "--out-dir", str(out),
                "--seed", "3"]
        # the documented command as a user runs it; the others through the same main, in process
        result = run_script("sample.py", *args) if name == "graph" else run_main_in_process("sample", *args)
        assert result.returncode == 0, result.stderr
        arrays[name] = np.load(target)
        assert arrays[name].shape == (50, 28, 28) and arrays[name].dtype == np.float32
        assert arrays[name].min() >= 0 and arrays[name].max() <= 1
    assert not np.allclose(arrays["graph"], arrays["exemplar"])
    again = tmp_path / "again.npy"  # in this process: the same seed gives the same images as a fresh interpreter
    result = run_main_in_process("sample", "--sampler", "graph", "--labels", "10", "--n", "50", "--out", str(again),
                                 "--out-dir", str(out), "--seed", "3")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(again), arrays["graph"])


def test_sample_errors_are_one_line(quick_run, tmp_path):
    out, _ = quick_run
    cases = ((["--sampler", "graph", "--labels", "100000"], "100000 labels per goal asked"),
             (["--sampler", "nope"], "unknown sampler 'nope'"),
             (["--model", "goal", "--sampler", "graph"], "use --model base"),
             (["--model", "vampire"], "unknown model 'vampire'"),
             # one checkpoint file per model: one trained for 6 must not answer a request for 9
             (["--model", "goal", "--sampler", "own-prior", "--goals", "9"], "trained for another request"))
    for i, (args, message) in enumerate(cases):
        args = [*args, "--out-dir", str(out), "--out", str(tmp_path / "x.npy")]
        # the script itself, as a user runs it; the other cases through the same main, in process
        result = run_script("sample.py", *args) if i == 0 else run_main_in_process("sample", *args)
        code, stderr = result.returncode, result.stderr
        assert code == 2 and len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: "), (args, stderr)
        assert message in stderr, (args, stderr)
        assert not (tmp_path / "x.npy").exists()


def test_an_unwritable_output_is_one_line(quick_run, tmp_path):
    out, _ = quick_run
    (tmp_path / "a-file").write_text("not a folder")
    result = run_main_in_process("sample", "--n", "5", "--out", str(tmp_path / "a-file" / "x.npy"), "--out-dir", str(out))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ") and "a-file" in result.stderr


def test_sample_without_checkpoint_names_the_training_command(tmp_path):
    result = run_main_in_process("sample", "--model", "goal", "--sampler", "own-prior", "--out-dir", str(tmp_path),
                                 "--out", str(tmp_path / "x.npy"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "python train.py --model goal" in result.stderr and not (tmp_path / "x.npy").exists()


def test_fashion_mnist_end_to_end(tmp_path, data_dir):
    # the dataset's plumbing, end to end, as small as it runs: 1,500 images at the default latent, one graph (the
    # MNIST quick run covers the UMAP graph). Until the ratio sampler proposed from p_goal where r* > 1, this run
    # stopped: from p_all it kept fewer than n of 5,000,000 proposals
    result = run_script("alltests.py", "--quick", "--dataset", "fashion-mnist", "--out-dir", str(tmp_path),
                        "--data-dir", data_dir, "--train-images", "1500", "--eval-samples", "500",
                        "--graph-umap-components", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.load(open(tmp_path / "figures" / "fashion-mnist" / "results.json"))
    assert results["config"]["latent_dim"] == constants.LATENT_DIM
    assert sorted(row["labels"] for row in results["sampling"] if row["source"] == "ratio") == ["10", "all"]
    assert results["dataset"] == "fashion-mnist" and results["goal_names"] == "6 shirt"
    assert os.path.exists(tmp_path / "models" / "fashion-mnist" / "base.pt")
    assert not os.path.exists(tmp_path / "models" / "base.pt")  # never mixed with MNIST's checkpoints
    assert "misses go to" in open(tmp_path / "figures" / "fashion-mnist" / "results.md").read()


def test_train_base_ignores_what_only_the_gmm_needs(tmp_path, data_dir):
    result = run_main_in_process("train", "--model", "base", "--expert-labels", "3", "--train-images", "500",
                                 "--epochs-base", "1", "--out-dir", str(tmp_path), "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.exists(tmp_path / "models" / "base.pt")


def test_missing_data_is_one_line_and_non_zero(tmp_path):
    # a dead local proxy makes torchvision's download fail at once, online or not
    dead_proxy = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                  "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    result = run_script("train.py", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path), env=dead_proxy)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "MNIST/raw" in lines[0] and "train-images-idx3-ubyte" in lines[0], lines
    assert not (tmp_path / "models").exists()


def test_a_run_counts_as_reusing_only_what_was_cached_before_it_began(tmp_path):
    """results.json's "reused": a checkpoint this run wrote and read back (the fine-tunes' base) is no reuse; one
    that was there before, unchanged, is; one there before but rewritten by this run is not."""
    (tmp_path / "old.pt").write_text("cached before")
    (tmp_path / "retrained.pt").write_text("cached before")
    log, reused = alltests.reuse_tracker(str(tmp_path), echo=lambda line: None)
    (tmp_path / "new.pt").write_text("trained now")
    os.utime(tmp_path / "retrained.pt", (1, 1))  # rewritten since: another modification time
    for name in ("new.pt", "old.pt", "retrained.pt", "old.pt"):
        log(f"{name}: reusing {tmp_path / name}")
    log(f"classifier: test accuracy 0.99 -> {tmp_path / 'old.pt'}")
    assert reused == {str(tmp_path / "old.pt")}


def test_sample_takes_the_settings_of_the_unlabelled_fit_it_reads(tmp_path):
    """sample.py fits (or reuses) the graph's unlabelled fit, so it takes that fit's settings: a bad value is its one
    line, naming the flag, before any model is read."""
    result = run_main_in_process("sample", "--graph-features", "pixels", "--out-dir", str(tmp_path),
                                 "--out", str(tmp_path / "x.npy"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ") and "--graph-features" in result.stderr

"""Issue 22: requests that used to be served silently wrong, fail late, or leave debris, each refused or handled."""
import errno
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

import cache
import config
import errors
import evaluate
import models
import samplers
from conftest import ROOT, run_main_in_process, run_script


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    return lines[0]


def test_samplers_and_priors_refuse_a_model_setting_their_checkpoint_was_not_trained_with(quick_run, tmp_path, data_dir):
    """Defect 1: `--sampler graph --latent-dim 8` against another latent size used to sample the checkpoint's model."""
    out, _ = quick_run
    other = 8 if config.RunConfig().latent_dim != 8 else 4
    for sampler in ("graph", "standard"):  # a biased sampler, and a model's own prior
        result = run_main_in_process("sample", "--sampler", sampler, "--latent-dim", str(other), "--n", "10", "--out",
                                     str(tmp_path / "o.npy"), "--out-dir", str(out), "--data-dir", data_dir)
        assert f"latent_dim {config.RunConfig().latent_dim} there, {other} asked" in one_error_line(result), sampler
        assert not (tmp_path / "o.npy").exists()


def test_a_cache_that_cannot_be_written_costs_a_notice_not_the_samples(quick_run, tmp_path, data_dir, monkeypatch):
    """Defect 2: graph and ratio failed in a read-only models/ folder when caching what they learnt."""
    out, _ = quick_run
    models_dir = tmp_path / "models"
    shutil.copytree(out / "models", models_dir)
    os.remove(models_dir / "unlabelled.pt")

    def read_only(obj, path):
        raise OSError(errno.EROFS, "Read-only file system", path)

    monkeypatch.setattr(cache, "save_torch", read_only)
    logs = []
    # one graph: the fit to cache is the point here, not the second graph's embedding
    cfg = config.RunConfig(train_images=3000, expert_labels=10, graph_umap_components=0)
    model, sampler = samplers.load_sampler("graph", str(models_dir / "base.pt"), cfg, data_dir, logs.append)
    assert models.decode_prior_samples(model, sampler, 5).shape == (5, 1, 28, 28)
    assert any("not cached" in line and "Read-only" in line for line in logs), logs


def test_an_impossible_n_is_one_line_before_any_work(tmp_path):
    """Defect 3: a huge --n ran out of memory in torch.multinomial with a traceback."""
    result = run_main_in_process("sample", "--n", "99999999999999", "--out", str(tmp_path / "o.npy"),
                                 "--out-dir", str(tmp_path))
    assert "GiB" in one_error_line(result) and not (tmp_path / "o.npy").exists()


def test_samples_stream_to_the_file_in_chunks(quick_run, tmp_path, data_dir):
    """More images than one chunk, written through the memory map: finite, in [0, 1], the shape asked."""
    out, _ = quick_run
    target = tmp_path / "many.npy"
    result = run_main_in_process("sample", "--sampler", "exemplar", "--n", "10500", "--out", str(target),
                                 "--out-dir", str(out), "--data-dir", data_dir, "--train-images", "3000")
    assert result.returncode == 0, result.stderr[-2000:]
    images = np.load(target)
    assert images.shape == (10500, 28, 28) and np.isfinite(images).all() and 0 <= images.min() <= images.max() <= 1
    assert images[10000:].std(0).mean() > 0  # the second chunk is samples, not a constant
    assert not np.allclose(images[10000:10100], images[:100])  # and not the first chunk again (one seed, one stream)


@pytest.mark.parametrize("script, args", [
    ("train.py", ["--out-dir", "{file}"]),
    ("alltests.py", ["--quick", "--out-dir", "{file}"]),
    ("sample.py", ["--out", "{folder}"]),
])
def test_an_unwritable_output_is_refused_first_naming_the_users_path(script, args, tmp_path, data_dir):
    """Defect 4: train.py and alltests.py trained for about 50 s before failing on their output; sample.py sampled
    first; the messages named the internal temporary file."""
    existing_file, folder = tmp_path / "a-file", tmp_path / "a-folder"
    existing_file.write_text("not a folder")
    folder.mkdir()
    args = [a.format(file=existing_file, folder=folder) for a in args]
    # alltests.py as a user runs it (one subprocess: what reaches the terminal); the others through main, in process
    run = run_script if script == "alltests.py" else lambda s, *a: run_main_in_process(s.removesuffix(".py"), *a)
    result = run(script, *args, "--data-dir", data_dir)
    line = one_error_line(result)
    assert (str(existing_file) if "{file}" in " ".join(args) or str(existing_file) in args else str(folder)) in line
    assert ".tmp-" not in line and "epoch" not in result.stdout + result.stderr
    assert not (tmp_path / "models").exists()


def test_a_write_names_the_users_path_not_the_temporary_one(tmp_path):
    folder = tmp_path / "out.npy"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as error:
        cache.write_text(str(folder), "x")
    assert error.value.filename == str(folder) and ".tmp-" not in str(error.value)


def test_a_killed_writes_temporary_file_is_removed_by_the_next_write(tmp_path):
    """Defect 5: a kill at the moment of writing left an orphan *.tmp-*.pt that no later run removed."""
    stale, fresh = tmp_path / "base.tmp-abc123.pt", tmp_path / "base.tmp-def456.pt"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"another process is writing this one now")
    old = time.time() - 2 * cache.STALE_TEMPORARY_SECONDS
    os.utime(stale, (old, old))
    cache.save_torch({"w": torch.ones(2)}, str(tmp_path / "base.pt"))
    assert sorted(os.listdir(tmp_path)) == ["base.pt", fresh.name]


def test_two_runs_on_one_folder_compute_an_artefact_once(tmp_path, data_dir):
    """Defect 7: two concurrent runs on the same folder each trained every model; the second now waits for the
    first and reuses its checkpoint."""
    args = ["--model", "base", "--out-dir", str(tmp_path), "--train-images", "600", "--epochs-base", "1",
            "--data-dir", data_dir, "--device", "cpu"]
    env = dict(os.environ, PYTHONHASHSEED="0")
    runs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *args], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [e[-1500:] for _, e in outputs]
    printed = "".join(o for o, _ in outputs)
    assert printed.count("best val loss") == 1 and printed.count("base: reusing") == 1, printed


def test_the_lock_makes_a_second_holder_wait(tmp_path):
    path, order = str(tmp_path / "artefact.pt"), []

    def second():
        with cache.locked(path):
            order.append("second")

    with cache.locked(path):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"]


def test_a_frechet_distance_with_a_complex_square_root_is_an_error(monkeypatch):
    """Defect 9: imaginary parts of sqrtm were dropped silently (pytorch-fid raises above 1e-3)."""
    a, b = torch.randn(50, 3), torch.randn(50, 3)
    assert evaluate.frechet_distance(a, b) >= 0
    monkeypatch.setattr(evaluate.linalg, "sqrtm", lambda m: np.eye(len(m)) * (1 + 0.01j))
    with pytest.raises(errors.MeasurementError, match="imaginary part"):
        evaluate.frechet_distance(a, b)


def test_every_project_module_an_artefact_runs_is_in_its_code_fingerprint():
    """Defect 9 / issue 18: the code map is derived from the imports, so losses.py (used by the samplers through
    models.py and by the evaluation) can no longer be missing. Checked against what Python really loads: each
    maker imported in a fresh interpreter, every project module in sys.modules (bar NOT_CODE) is in its map."""
    assert "losses" in cache.code_modules("sampler") and "losses" in cache.code_modules("evaluation")
    project = {name[:-3] for name in os.listdir(ROOT) if name.endswith(".py")}
    # one interpreter loads the third-party libraries (no project module), then forks a child per maker, which
    # imports it afresh and prints the modules it has: what a fresh interpreter per maker would load, 8x faster
    probe = ("import os, sys, torch, torchvision, numpy, scipy, sklearn\n"
             "for maker in sys.argv[1:]:\n"
             "    pid = os.fork()\n"
             "    if pid == 0:\n"
             "        __import__(maker)\n"
             "        print(maker, ' '.join(sys.modules), flush=True)\n"
             "        os._exit(0)\n"
             "    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0, maker\n")
    makers = sorted(set(cache.MAKERS.values()))
    output = subprocess.run([sys.executable, "-c", probe, *makers], cwd=ROOT, capture_output=True, text=True,
                            check=True, timeout=300).stdout.splitlines()
    loaded = {line.split()[0]: set(line.split()[1:]) for line in output}
    assert set(loaded) == set(cache.MAKERS.values())
    for kind, maker in cache.MAKERS.items():
        missing = (loaded[maker] & project) - set(cache.NOT_CODE) - set(cache.code_modules(kind))
        assert not missing, (kind, missing)
        assert maker in loaded[maker] and maker in cache.code_modules(kind)  # the probe saw the maker itself


def test_library_versions_are_part_of_every_identity():
    ident = cache.identity("base", config.RunConfig(), "data")
    assert ident["libraries"]["torch"] == torch.__version__
    changed = dict(ident, libraries={**ident["libraries"], "torch": "0.0"})
    assert "libraries" in cache.differences(changed, ident)


def test_a_missing_data_folder_leaves_nothing_behind(tmp_path):
    """Defect 10: a missing --data-dir left an empty MNIST/ folder behind."""
    missing = tmp_path / "nowhere"
    dead_proxy = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                  "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}  # no download, at once
    result = run_main_in_process("train", "--data-dir", str(missing), "--out-dir", str(tmp_path / "out"), env=dead_proxy)
    assert "not found" in one_error_line(result)
    assert not missing.exists()


def test_a_sampler_that_collapses_says_so(quick_run, data_dir):
    """Defect 10: goal-gaussian from 1 label gave near-identical images without a word."""
    out, _ = quick_run
    cfg = config.RunConfig(train_images=3000, expert_labels=1)
    logs = []
    samplers.load_sampler("goal-gaussian", str(out / "models" / "base.pt"), cfg, data_dir, logs.append)
    assert any(line.startswith("warning: the goal-gaussian sampler from 1 label(s) draws near-copies") for line in logs)
    logs.clear()
    samplers.load_sampler("exemplar", str(out / "models" / "base.pt"), cfg.replace(expert_labels=10), data_dir,
                          logs.append)
    assert not any(line.startswith("warning") for line in logs)

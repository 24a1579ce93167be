"""Bad input gives one clear line and a non-zero exit; checkpoints are atomic, typed and config-checked."""
import json
import os

import pytest
import torch

import alltests
import constants
import mnist
import sample
import train
from conftest import run_script
from models import ConvVAE, DiagonalGaussianPrior, StandardNormalPrior


def cli_error(capsys, main, argv):
    """Run a script's main() as its __main__ does; return (exit code, stderr lines)."""
    with pytest.raises(SystemExit) as exit_info:
        train.run_main(lambda: main(argv))
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("argv, message", [
    (["--goals", "10"], "goal 10 is not a digit"),
    (["--goals", "-1"], "goal -1 is not a digit"),
    (["--goals", "6", "6"], "repeat"),
    (["--latent-dim", "0"], "latent dim must be an integer >= 1"),
    (["--gmm-components", "0"], "GMM components must be >= 1"),
    (["--gmm-components", "100000"], "exceed the"),
    (["--beta-goal", "-1"], "beta_goal must be a finite number >= 0"),
    (["--beta-gmm", "nan"], "beta_gmm must be a finite number >= 0"),
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--batch-size", "0"], "batch size must be >= 1"),
    (["--expert-labels", "0"], "expert labels must be an integer >= 1"),
    (["--expert-labels", "3"], "GMM components (5) exceed the 3 expert-labelled goal training images"),
])
def test_bad_settings_are_one_line_errors_before_any_training(capsys, tmp_path, data_dir, argv, message):
    code, err = cli_error(capsys, alltests.main, ["--quick", "--out-dir", str(tmp_path), "--data-dir", data_dir] + argv)
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "models").exists()  # nothing was trained or written


def test_command_line_type_errors_are_one_line(capsys, tmp_path):
    code, err = cli_error(capsys, alltests.main, ["--goals", "six", "--out-dir", str(tmp_path)])
    assert code == 2 and len(err) == 1 and "invalid int value: 'six'" in err[0], err
    code, err = cli_error(capsys, alltests.main, ["--goals"])
    assert code == 2 and len(err) == 1 and "expected at least one argument" in err[0], err
    code, err = cli_error(capsys, sample.main, ["--prior", "uniform", "--out-dir", str(tmp_path)])
    assert code == 2 and len(err) == 1 and "unknown prior 'uniform'" in err[0], err


def test_config_rejects_empty_and_non_integer_goals():
    with pytest.raises(train.ConfigError, match="empty"):
        train.RunConfig(goals=[]).validate()
    with pytest.raises(train.ConfigError, match="not a digit"):
        train.RunConfig(goals=[6.5]).validate()
    with pytest.raises(train.ConfigError, match="not a digit"):
        train.RunConfig(goals=["6"]).validate()


def test_goal_digit_without_training_images(small_data):
    no_sevens = mnist.MNISTSplits(**{**vars(small_data), "train_x": small_data.train_x[small_data.train_y != 7],
                                     "train_y": small_data.train_y[small_data.train_y != 7]})
    with pytest.raises(train.ConfigError, match="no training images of goal digit 7"):
        train.check_goal_data(train.RunConfig(goals=[6, 7]).validate(), no_sevens)


def test_unknown_model_and_prior(capsys, tmp_path):
    code, err = cli_error(capsys, train.main, ["--model", "vampprior", "--out-dir", str(tmp_path)])
    assert code == 2 and len(err) == 1 and "unknown model 'vampprior'" in err[0]
    code, err = cli_error(capsys, sample.main, ["--model", "gan", "--out-dir", str(tmp_path)])
    assert code == 2 and "unknown model 'gan'" in err[0]
    path = tmp_path / "goal.pt"
    train.save_checkpoint(str(path), ConvVAE(2), StandardNormalPrior(2), {}, [])
    with pytest.raises(train.ConfigError, match="unknown prior 'uniform'"):
        sample.draw(str(path), 4, prior="uniform")


def test_unavailable_device_is_one_line(capsys, tmp_path, data_dir):
    for device, message in (("tpu9", "unknown device 'tpu9'"), ("cuda" if not torch.cuda.is_available() else "mps",
                                                                 "is not available on this machine")):
        code, err = cli_error(capsys, alltests.main, ["--quick", "--out-dir", str(tmp_path), "--data-dir", data_dir,
                                                      "--device", device])
        assert code == 2 and len(err) == 1 and message in err[0], err


def test_one_dimensional_latent_skips_only_the_2d_figures(small_data, tmp_path, capsys):
    model = ConvVAE(1)
    alltests.model_figures("base", model, StandardNormalPrior(1), small_data, str(tmp_path), goals=[6], n_grid=8)
    written = sorted(os.listdir(tmp_path))
    assert written == sorted(alltests.figure_names("base", 1)) and len(written) == 6
    assert "latent dim is 1" in capsys.readouterr().out


def test_checkpoint_round_trip_keeps_weights_prior_and_config(tmp_path):
    model = ConvVAE(3)
    prior = DiagonalGaussianPrior(torch.arange(3.0), torch.full((3,), 0.5))
    identity = train.RunConfig().validate().identity("goal", "data-id")
    train.save_checkpoint(str(tmp_path / "goal.pt"), model, prior, identity, [{"epoch": 1, "val_loss": 1.0}])
    loaded, loaded_prior, checkpoint = train.load_checkpoint(str(tmp_path / "goal.pt"))
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(loaded_prior.mean, prior.mean) and loaded_prior.kind == "goal"
    assert checkpoint["identity"] == identity and checkpoint["identity"]["goals"] == constants.EXPERT_GOALS


class Payload:
    """An arbitrary object: weights_only loading must refuse to unpickle it."""


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "base.pt"
    torch.save({"format": train.CHECKPOINT_FORMAT, "payload": Payload()}, path)
    with pytest.raises(train.CheckpointError, match="not a safe Biased VAE checkpoint"):
        train.load_checkpoint(str(path))


def test_checkpoint_from_another_architecture_is_refused(tmp_path):
    path = tmp_path / "base.pt"
    train.save_checkpoint(str(path), ConvVAE(4), StandardNormalPrior(4), {}, [])
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"] = {k.replace("encoder", "enc"): v for k, v in checkpoint["state_dict"].items()}
    torch.save(checkpoint, path)
    with pytest.raises(train.CheckpointError, match="does not match this code's architecture"):
        train.load_checkpoint(str(path))
    torch.save({**checkpoint, "architecture": {"class": "MLPVAE", "latent_dim": 4}}, path)
    with pytest.raises(train.CheckpointError, match="'MLPVAE' model"):
        train.load_checkpoint(str(path))


def test_sample_cli_on_a_foreign_checkpoint_is_one_line(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "goal.pt").write_bytes(b"not a checkpoint at all")
    result = run_script("sample.py", "--model", "goal", "--out-dir", str(tmp_path), "--out", str(tmp_path / "s.npy"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "not a safe Biased VAE checkpoint" in result.stderr


def test_interrupted_save_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    path = str(tmp_path / "base.pt")
    train.atomic_torch_save({"good": torch.ones(3)}, path)
    good_bytes = open(path, "rb").read()

    def torn_save(obj, f):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        train.atomic_torch_save({"new": torch.zeros(3)}, path)
    assert open(path, "rb").read() == good_bytes
    assert os.listdir(tmp_path) == ["base.pt"]  # no temporary file left behind


def tiny_config(**changes):
    return train.RunConfig(train_images=600, epochs_base=1, epochs_finetune=1, batch_size=100, gmm_components=2,
                           **changes).validate()


def test_checkpoint_with_other_settings_is_retrained_with_a_notice(small_data, tmp_path):
    data = mnist.MNISTSplits(**{**vars(small_data), "train_x": small_data.train_x[:600],
                                "train_y": small_data.train_y[:600], "val_x": small_data.val_x[:100]})
    logs = []
    train.get_model("goal", tiny_config(), data, torch.device("cpu"), str(tmp_path), log=logs.append, progress=False)
    logs.clear()
    train.get_model("goal", tiny_config(), data, torch.device("cpu"), str(tmp_path), log=logs.append, progress=False)
    assert any("goal: reusing" in line for line in logs), logs
    logs.clear()
    _, _, checkpoint = train.get_model("goal", tiny_config(beta_goal=2.0), data, torch.device("cpu"), str(tmp_path),
                                       log=logs.append, progress=False)
    assert any("other settings (beta_goal)" in line for line in logs), logs
    assert checkpoint["identity"]["beta_goal"] == 2.0


def test_nan_loss_names_the_step_and_keeps_the_good_checkpoint(small_data, tmp_path):
    data = mnist.MNISTSplits(**{**vars(small_data), "train_x": small_data.train_x[:600].clone(),
                                "train_y": small_data.train_y[:600], "val_x": small_data.val_x[:100]})
    train.get_model("base", tiny_config(), data, torch.device("cpu"), str(tmp_path), log=lambda _: None, progress=False)
    good_bytes = open(tmp_path / "base.pt", "rb").read()
    data.train_x[:] = float("nan")  # every batch now gives a NaN loss
    with pytest.raises(train.TrainingError, match=r"loss became nan at epoch 1, step 1"):
        train.get_model("base", tiny_config(), data, torch.device("cpu"), str(tmp_path), retrain=True,
                        log=lambda _: None, progress=False)
    assert open(tmp_path / "base.pt", "rb").read() == good_bytes


@pytest.mark.parametrize("beta", [0.1, 5.0])
@pytest.mark.parametrize("latent_dim", [2, 16])
def test_training_stays_finite_across_beta_and_latent_dim(small_data, beta, latent_dim):
    torch.manual_seed(0)
    model = ConvVAE(latent_dim)
    history = train.fit(model, StandardNormalPrior(latent_dim), small_data.train_x[:1000], small_data.val_x[:200],
                        beta=beta, epochs=1, batch_size=100, progress=False)
    assert all(torch.isfinite(torch.tensor(h["val_loss"])) for h in history)


def test_same_seed_same_results(quick_run, tmp_path, data_dir):
    """Two quick runs with the same seed on the CPU give identical results.json numbers."""
    first, _ = quick_run
    result = run_script("alltests.py", "--quick", "--out-dir", str(tmp_path), "--data-dir", data_dir, "--device", "cpu")
    assert result.returncode == 0, result.stderr[-2000:]
    a = json.load(open(first / "figures" / "results.json"))
    b = json.load(open(tmp_path / "figures" / "results.json"))
    assert a["sampling"] == b["sampling"] and a["test_split"] == b["test_split"]
    assert a["best_validation"] == b["best_validation"]


def test_notebook_runs_headless_against_the_quick_checkpoints(quick_run, data_dir):
    import nbclient
    import nbformat
    out, _ = quick_run
    notebook = nbformat.read(os.path.join(os.path.dirname(__file__), "..", "notebooks", "explore.ipynb"), as_version=4)
    os.environ["BIASED_VAE_OUT_DIR"] = str(out)
    try:
        nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": os.path.dirname(os.path.dirname(__file__))}}).execute()
    finally:
        del os.environ["BIASED_VAE_OUT_DIR"]
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum(o.get("output_type") == "display_data" for o in outputs) >= 8  # the figures were drawn

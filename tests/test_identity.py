"""Nothing cached is reused unless it is what the current settings, code and parents would make (cache.py), each
setting is declared once (config.py), and the training loop's guards hold."""
import argparse
import os
import shutil
import subprocess
import sys

import pytest
import torch

import cache
import checkpoints
import cli
import config
import constants
import datasets
import fitting
import losses
import models
import train
import units
from conftest import ROOT
from models import ConvVAE, DiagonalGaussianPrior, StandardNormalPrior, encode_means

DEVICE = torch.device("cpu")


def tiny_config(**changes):
    return config.RunConfig(train_images=600, epochs_base=1, epochs_finetune=1, batch_size=100, **changes).validate()


@pytest.fixture
def tiny_data(small_data):
    return small_data.replace(train_x=small_data.train_x[:600], train_y=small_data.train_y[:600],
                              val_x=small_data.val_x[:100], val_y=small_data.val_y[:100])


# --- one declaration per setting --------------------------------------------------------------------------

def test_every_setting_is_declared_once_with_a_default_a_flag_and_a_check():
    names = [s.name for s in config.SETTINGS]
    assert len(names) == len(set(names))
    defaults = config.RunConfig().validate()
    for s in config.SETTINGS:
        assert hasattr(constants, s.constant), s.name  # the setting's own name, in capitals
        assert getattr(defaults, s.name) == getattr(constants, s.constant)
        assert s.check(getattr(defaults, s.name)) is None, s.name  # the defaults pass their own checks
        assert s.affects and set(s.affects) <= set(config.ARTEFACTS), s.name
        assert s.flag == "--" + s.name.replace("_", "-")


def test_a_settings_short_flag_sets_the_same_setting_in_every_script():
    parser = config.add_setting_flags(argparse.ArgumentParser())
    for flag in ("--labels", "--expert-labels"):
        assert config.config_from_args(parser.parse_args([flag, "3"])).expert_labels == 3
        assert config.config_from_args(parser.parse_args([flag, "all"])).expert_labels is None


BAD_VALUES = {"arch": "mlp", "graph_features": "pixels", "likelihood": "laplace", "hidden": 0, "label_draw": -1, "dataset": "cifar", "validation_split": 1.5, "train_images": 0, "seed": -1, "latent_dim": 0,
              "logvar_min": float("nan"), "logvar_max": float("inf"), "goals": [], "expert_labels": 0,
              "labelled_only_kl": "yes", "beta_base": -1.0, "beta_goal": float("nan"), "beta_gmm": -0.5,
              "gmm_components": 0, "gmm_covariance_type": "banded", "gmm_reg_covar": 0.0, "gmm_kl_samples": 0,
              "batch_size": 0, "lr": 0.0, "lr_schedule": "cosine", "warmup": 1.0, "epochs_base": 0,
              "epochs_finetune": 0, "patience": 0, "lr_patience": -1, "grad_clip": 0.0, "channels_last": 1,
              "graph_neighbours": 0, "graph_umap_components": -1, "graph_umap_neighbours": 1, "graph_restart": 0.0, "graph_core": 1.5, "graph_max_share": 0.0, "graph_rounds": 0, "graph_cut_tolerance": 0.9,
              "graph_temperature": 0.0, "pseudo_epochs": 0, "ratio_components": 0, "ratio_rounds": -1, "classifier_epochs": 0,
              "classifier_lr": -1.0, "classifier_batch_size": 0, "eval_samples": 1, "prdc_neighbours": 0}


@pytest.mark.parametrize("setting", config.SETTINGS, ids=lambda s: s.name)
def test_each_setting_rejects_a_bad_value_with_one_line_naming_its_flag(setting):
    with pytest.raises(config.ConfigError) as error:
        config.RunConfig(**{setting.name: BAD_VALUES[setting.name]}).validate()
    assert setting.flag in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("setting", [s for s in config.SETTINGS if isinstance(s.default(), float)],
                         ids=lambda s: s.name)
def test_every_number_setting_rejects_a_boolean_nan_and_infinity(setting):
    """A bool is an int to Python: `True` must not pass as 1 (fraction_or_one once took it), nor NaN or inf."""
    for value in (True, float("nan"), float("inf"), float("-inf")):
        assert setting.check(value) is not None, (setting.name, value)
    with pytest.raises(config.ConfigError, match=setting.flag):
        config.RunConfig(**{setting.name: True}).validate()
    assert setting.check(setting.default()) is None  # and the default, as the int it may be written as, passes
    assert setting.check(int(setting.default())) is None or setting.default() != int(setting.default())


def test_the_number_checks_take_their_edge_values():
    """The bounds themselves pass, ints too: a check with a strict bound (> for >=) passes the test above."""
    for name, value in {"beta_base": 0, "beta_goal": 0.0, "graph_core": 1, "graph_cut_tolerance": 1,
                        "logvar_min": -30, "graph_max_share": 1.0, "warmup": 0.5}.items():
        assert config.RunConfig(**{name: value}).validate().as_dict()[name] == value, name


def test_flags_are_derived_from_the_declaration_and_all_means_every_label():
    import cli
    parser = config.add_setting_flags(cli.ArgumentParser())
    cfg = config.config_from_args(parser.parse_args(["--expert-labels", "all", "--latent-dim", "8",
                                                     "--labelled-only-kl", "--goals", "9", "6"]), {"expert_labels": 10})
    assert cfg.expert_labels is None and cfg.latent_dim == 8 and cfg.labelled_only_kl is True and cfg.goals == [6, 9]
    assert config.config_from_args(parser.parse_args([]), {"expert_labels": 10}).expert_labels == 10


@pytest.mark.parametrize("setting", config.SETTINGS, ids=lambda s: s.name)
def test_a_setting_changes_the_identity_of_exactly_the_artefacts_it_affects(setting):
    changed_value = {"dataset": "fashion-mnist", "goals": [3], "expert_labels": 7, "labelled_only_kl": True,
                     "arch": "resnet", "likelihood": "gaussian", "graph_features": "hidden",
                     "gmm_covariance_type": "diag", "lr_schedule": "plateau", "channels_last": False,
                     "train_images": 1234}.get(setting.name)
    default = config.RunConfig()
    if changed_value is None:
        value = getattr(default, setting.name)
        changed_value = value * 0.5 if isinstance(value, float) else value + 1
    other = default.replace(**{setting.name: changed_value})
    for kind in config.ARTEFACTS:
        same = cache.identity(kind, default, "data") == cache.identity(kind, other, "data")
        assert same == (kind not in setting.affects), (setting.name, kind)


def test_every_setting_the_code_of_an_artefact_reads_is_in_its_identity():
    """The test above checks identities against the declarations; this one checks the declarations against the
    code: each `<x>cfg.<setting>` read in the functions that make an artefact must be a setting it declares."""
    import ast
    import inspect
    import textwrap
    import classifier
    import samplers
    paths = {"base": [train.train_run, datasets.load_for], "cvae": [train.train_run, datasets.load_for],
             "goal": [train.train_run, train.fit_prior, train.labelled_kl_masks, datasets.load_for],
             "gmm": [train.train_run, train.fit_prior, train.labelled_kl_masks, train.check_goal_data,
                     datasets.load_for],
             "unlabelled": [samplers.get_unlabelled, samplers.unlabelled_identity, samplers.fit_unlabelled,
                            datasets.load_for],
             "evaluation": [samplers.fit_sampler, samplers.labelled_indices, units.evaluation_unit, units.splits_for,
                            samplers.fit_pseudo_label, samplers.discover, fitting.fit],
             "classifier": [classifier.get_classifier]}
    # reads in branches that do not run for that kind, or values that reach it through a parent's content hash
    not_for_this_kind = {"base": {"labelled_only_kl"}, "cvae": {"labelled_only_kl"},  # a fine-tune's branch only
                         "goal": {"gmm_components", "gmm_covariance_type", "gmm_kl_samples", "gmm_reg_covar"},
                         "evaluation": {"latent_dim"}}  # the base checkpoint's, which is its parent
    for kind, functions in paths.items():
        reads = set()
        for function in functions:
            tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
            reads |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                      and isinstance(node.value, ast.Name) and node.value.id.endswith("cfg")
                      and node.attr in config.BY_NAME}
        undeclared = reads - set(config.RunConfig().for_artefact(kind)) - not_for_this_kind.get(kind, set())
        assert not undeclared, f"{kind} reads {sorted(undeclared)} but its identity does not include them"


# --- code, data and parents -----------------------------------------------------------------------------

def fingerprint_in_copy(tmp_path, edit=None):
    """cache.code_fingerprint('base') computed in a copy of the project whose models.py got `edit`."""
    copy = tmp_path / "project"
    if not copy.exists():
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", "runs", "models", "figures", "data"))
    source = copy / "models.py"
    original = open(os.path.join(ROOT, "models.py")).read()
    source.write_text(original if edit is None else edit(original))
    out = subprocess.run([sys.executable, "-c", "import cache; print(cache.code_fingerprint('base'))"], cwd=copy,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_an_edit_to_the_model_code_changes_a_checkpoints_identity_and_a_comment_does_not(tmp_path):
    as_is = fingerprint_in_copy(tmp_path)
    assert as_is == cache.code_fingerprint("base")
    assert fingerprint_in_copy(tmp_path, lambda s: s + "\n# a comment\n") == as_is
    assert fingerprint_in_copy(tmp_path, lambda s: s.replace('"""The convolutional VAE', '"""A convolutional VAE')) == as_is
    edit = "nn.Conv2d(1, 16, 4, stride=2, padding=1)"
    assert edit in open(os.path.join(ROOT, "models.py")).read()
    assert fingerprint_in_copy(tmp_path, lambda s: s.replace(edit, edit.replace("16, 4", "16, 3"))) != as_is


def test_a_process_whose_loaded_code_was_edited_refuses_to_fingerprint_it(tmp_path):
    """A long-lived worker runs the code it imported: after an edit of the file it must not key old code's results
    with the new code's fingerprint (a reload starts afresh)."""
    fingerprint_in_copy(tmp_path)  # makes the copy
    copy = tmp_path / "project"
    script = ("import importlib, cache, models\n"
              "before = cache.code_fingerprint('base')\n"
              "open('models.py', 'a').write('\\nEDITED = 1\\n')\n"
              "try:\n    cache.code_fingerprint('base')\nexcept cache.StaleCodeError as error:\n    print('stale', error)\n"
              "importlib.reload(models)\n"
              "print('reloaded', cache.code_fingerprint('base') != before)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=copy, capture_output=True, text=True, check=True).stdout
    assert "stale" in out and "models.py changed after this process loaded it" in out, out
    assert "reloaded True" in out, out


def test_a_changed_learning_rate_retrains_a_checkpoint_and_nothing_else(tiny_data, tmp_path):
    logs = []
    train.get_model("goal", tiny_config(), tiny_data, DEVICE, str(tmp_path), log=logs.append, progress=False)
    logs.clear()
    train.get_model("goal", tiny_config(beta_gmm=2.0), tiny_data, DEVICE, str(tmp_path), log=logs.append,
                    progress=False)
    assert any("base: reusing" in line for line in logs) and any("goal: reusing" in line for line in logs), logs
    logs.clear()
    train.get_model("goal", tiny_config(lr=1e-3), tiny_data, DEVICE, str(tmp_path), log=logs.append, progress=False)
    assert any("base:" in line and "other inputs (lr)" in line for line in logs), logs
    assert any("goal:" in line and "lr" in line and "parent base" in line for line in logs), logs


def test_a_retrained_base_invalidates_its_fine_tunes_and_samplers(tiny_data, tmp_path):
    import samplers
    cfg = tiny_config()
    goal = train.get_model("goal", cfg, tiny_data, DEVICE, str(tmp_path), log=lambda _: None, progress=False)
    base = models.load_checkpoint(str(tmp_path / "base.pt"))
    samplers.get_unlabelled(base[0], base[2], tiny_data, cfg, str(tmp_path), log=lambda _: None)
    # the base is retrained (a changed base-only setting): its children name the old base as parent
    train.get_model("base", cfg.replace(beta_base=2.0), tiny_data, DEVICE, str(tmp_path), log=lambda _: None,
                    progress=False)
    logs = []
    new_goal = train.get_model("goal", cfg.replace(beta_base=2.0), tiny_data, DEVICE, str(tmp_path), log=logs.append,
                               progress=False)
    assert any("goal:" in line and "parent base" in line for line in logs), logs
    assert new_goal[2]["identity"]["parents"]["base"] != goal[2]["identity"]["parents"]["base"]
    base = models.load_checkpoint(str(tmp_path / "base.pt"))
    logs.clear()
    samplers.get_unlabelled(base[0], base[2], tiny_data, cfg.replace(beta_base=2.0), str(tmp_path), log=logs.append)
    assert any("unlabelled:" in line and "parent base" in line for line in logs), logs


def test_each_configuration_keeps_its_checkpoint_and_switching_back_trains_nothing(tiny_data, tmp_path):
    """Issue 22, defect 8: a base with another latent size replaces base.pt, and the first is kept under its
    identity; asking for the first again reuses it (no training) and makes it the latest. A retraining of the same
    settings replaces the kept copy when it is itself replaced, never the other way round."""
    folder = str(tmp_path)
    first = train.get_model("base", tiny_config(), tiny_data, DEVICE, folder, log=lambda _: None, progress=False)
    logs = []
    train.get_model("base", tiny_config(latent_dim=3), tiny_data, DEVICE, folder, log=logs.append, progress=False)
    kept = checkpoints.kept_path(folder, "base", first[2]["identity"])
    assert any(f"kept as {kept}" in line for line in logs), logs
    assert models.load_checkpoint(str(tmp_path / "base.pt"))[0].latent_dim == 3
    logs.clear()
    again = train.get_model("base", tiny_config(), tiny_data, DEVICE, folder, log=logs.append, progress=False)
    assert not any("best val loss" in line for line in logs), logs  # reused, not trained
    assert again[2]["content_hash"] == first[2]["content_hash"]
    assert models.load_checkpoint(str(tmp_path / "base.pt"))[2]["content_hash"] == first[2]["content_hash"]
    # a retraining of the first settings, then a switch away and back: the retrained weights come back
    retrained = train.get_model("base", tiny_config(), tiny_data, DEVICE, folder, retrain=True, log=lambda _: None,
                                progress=False)
    torch.nn.init.zeros_(retrained[0].decoder[0].bias)  # make the retrained copy tell-apart, then save it as such
    retrained_hash = models.save_checkpoint(str(tmp_path / "base.pt"), retrained[0], retrained[1],
                                            retrained[2]["identity"], retrained[2]["history"])["content_hash"]
    train.get_model("base", tiny_config(latent_dim=3), tiny_data, DEVICE, folder, log=lambda _: None, progress=False)
    back = train.get_model("base", tiny_config(), tiny_data, DEVICE, folder, log=lambda _: None, progress=False)
    assert back[2]["content_hash"] == retrained_hash != first[2]["content_hash"]


def test_sample_opens_the_kept_checkpoint_that_serves_the_settings_given(tiny_data, tmp_path):
    """Issue 22, defects 1 and 8: with a latent-3 base latest and a default one kept, `--latent-dim` of the default
    opens the kept one; no flag opens the latest; a latent size never trained is refused in one line."""
    import sample
    models_dir = str(tmp_path / "models")
    default = tiny_config().latent_dim
    for latent_dim in (default, 3):
        train.get_model("base", tiny_config(latent_dim=latent_dim), tiny_data, DEVICE, models_dir,
                        log=lambda _: None, progress=False)
    logs = []
    model, _ = sample.load_source("base", "standard", tiny_config(), str(tmp_path), log=logs.append,
                                  asked=["latent_dim"])
    assert model.latent_dim == default != 3 and any("using" in line and "kept" in line for line in logs), logs
    assert sample.load_source("base", "standard", tiny_config(), str(tmp_path), asked=[])[0].latent_dim == 3
    with pytest.raises(cli.CheckpointError, match="latent_dim"):
        sample.load_source("base", "standard", tiny_config(latent_dim=5), str(tmp_path), asked=["latent_dim"])


def test_a_changed_setting_recomputes_a_study_unit(tmp_path, data_dir):
    spec = {"name": "s0/base", "model": "base", "data_dir": data_dir, "out_dir": str(tmp_path),
            "run": tiny_config().as_dict()}
    first = units.vae_unit(spec)
    assert not first["cached"] and units.vae_unit(spec)["cached"]
    changed = units.vae_unit({**spec, "run": tiny_config(lr=1e-3).as_dict()})
    assert not changed["cached"] and changed["path"] != first["path"] and changed["hash"] != first["hash"]


def test_two_models_trained_one_after_another_get_their_own_numbers(tmp_path, data_dir):
    """The defect this replaces: results cached by id(model), which CPython reuses once a model is freed. Two
    decoders trained with different learning rates, evaluated with the same evaluation settings one after the
    other: only their content hashes tell the evaluations apart, and each must get its own numbers."""
    classifier = units.classifier_unit({"name": "clf", "data_dir": data_dir, "out_dir": str(tmp_path),
                                        "run": tiny_config(classifier_epochs=1).as_dict()})
    rows = []
    for lr in (1e-3, 3e-3):  # each model is freed before the next is built
        run = tiny_config(lr=lr, eval_samples=200).as_dict()
        base = units.vae_unit({"name": "base", "model": "base", "data_dir": data_dir, "out_dir": str(tmp_path),
                               "run": run})
        rows.append(units.evaluation_unit({"name": "eval", "data_dir": data_dir, "out_dir": str(tmp_path),
                                           "run": run, "row": {}, "has_decoder": False, "has_unlabelled": False,
                                           "sources": [{"method": "base", "source": "standard", "beta": None,
                                                        "labels": None},
                                                       {"method": "ceiling", "source": "ceiling", "beta": None,
                                                        "labels": None}]}, classifier, base))
    assert not rows[1]["cached"]
    assert rows[0]["rows"][0]["fd_goal"] != rows[1]["rows"][0]["fd_goal"]
    assert rows[0]["rows"][0]["diversity"] != rows[1]["rows"][0]["diversity"]
    # the references (the base's reconstructions) are each base's own, not the first one's kept for the second
    assert rows[0]["rows"][1]["diversity"] != rows[1]["rows"][1]["diversity"]


def test_an_evaluation_unit_in_process_keeps_its_threads_and_its_images(tmp_path, data_dir):
    """alltests.py's use of the study's unit: "threads": None leaves the process's thread count, "keep_images" keeps
    that many of each sampled source's images beside the rows, and a cached result whose images file is gone is
    computed again rather than returned without them."""
    run = tiny_config(eval_samples=200).as_dict()
    spec = {"name": "clf", "data_dir": data_dir, "out_dir": str(tmp_path), "run": run}
    classifier = units.classifier_unit(spec)
    base = units.vae_unit({**spec, "name": "base", "model": "base"})
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # not the unit's default of 1 (the same count throughout: it decides the last digits)
    try:
        evaluation = {**spec, "name": "eval", "row": {}, "has_decoder": False, "has_unlabelled": False,
                      "threads": None, "device": "cpu", "keep_images": 5,
                      "sources": [{"model": "base", "source": "standard", "labels": None},
                                  {"model": "decoder ceiling", "source": "ceiling", "labels": None}]}
        first = units.evaluation_unit(evaluation, classifier, base)
        assert torch.get_num_threads() == 2
        kept = cache.load_tensors(first["images"])
        assert list(kept["images"]) == ["standard"] and kept["images"]["standard"].shape == (5, 1, 28, 28)
        assert kept["own_decoder"] == []
        again = units.evaluation_unit(evaluation, classifier, base)
        assert again["cached"] and again["rows"] == first["rows"]
        os.remove(first["images"])
        recomputed = units.evaluation_unit(evaluation, classifier, base)
        assert not recomputed["cached"] and os.path.exists(recomputed["images"])
        assert recomputed["rows"] == first["rows"]
    finally:
        torch.set_num_threads(threads)
    assert units.evaluation_unit({**evaluation, "keep_images": 0}, classifier, base)["images"] is None
    assert not units.evaluation_unit({**evaluation, "recompute": True}, classifier, base)["cached"]  # --retrain
    with pytest.raises(cli.CheckpointError, match="not the base its unit made"):  # a file replaced behind its maker
        units.evaluation_unit(evaluation, classifier, {**base, "hash": "0" * 16})


# --- the training loop's guards ----------------------------------------------------------------------

def test_a_non_finite_validation_loss_is_one_line_and_keeps_the_good_checkpoint(tiny_data, tmp_path, capsys):
    import cli
    train.get_model("base", tiny_config(), tiny_data, DEVICE, str(tmp_path), log=lambda _: None, progress=False)
    good = open(tmp_path / "base.pt", "rb").read()
    broken = tiny_data.replace(val_x=tiny_data.val_x.clone())
    broken.val_x[0, 0, 0, 0] = float("nan")  # training stays finite, validation does not
    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(lambda: train.get_model("base", tiny_config(), broken, DEVICE, str(tmp_path), retrain=True,
                                             log=lambda _: None, progress=False))
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and "validation loss became nan at epoch 1" in err[0], err
    assert open(tmp_path / "base.pt", "rb").read() == good


def test_early_stopping_stops_after_patience_epochs_without_a_better_loss(tiny_data):
    """A learning rate of 1e-12 leaves the weights (and so the fixed-noise validation loss) unchanged: the loop
    must stop after `patience` epochs without a gain, not run all ten."""
    model = ConvVAE(2)
    history = fitting.fit(model, StandardNormalPrior(2), tiny_data.train_x, tiny_data.val_x,
                        config.RunConfig(lr=1e-12, patience=2, batch_size=100), beta=1.0, epochs=10, progress=False)
    assert len(history) == 3
    assert losses.objective(model, StandardNormalPrior(2), tiny_data.val_x, 1.0, constants.SEED)["loss"] == \
        pytest.approx(history[0]["val_loss"], rel=1e-6)


def test_fit_keeps_the_best_weights_on_its_own_objective(tiny_data):
    model = ConvVAE(2)
    prior = DiagonalGaussianPrior(torch.ones(2), torch.full((2,), 0.2))
    history = fitting.fit(model, prior, tiny_data.train_x, tiny_data.val_x, config.RunConfig(batch_size=64), beta=1.0,
                        epochs=3, progress=False)
    again = losses.objective(model, prior, tiny_data.val_x, 1.0, constants.SEED)
    assert again["loss"] == pytest.approx(min(h["val_loss"] for h in history), rel=1e-5)
    standard = losses.objective(model, StandardNormalPrior(2), tiny_data.val_x, 1.0, constants.SEED)
    assert standard["kl"] != pytest.approx(again["kl"], rel=1e-3)


def test_goal_latents_are_the_posterior_means_of_the_labelled_goal_images(small_data):
    model = ConvVAE(3).eval()
    latents = train.goal_latents(model, small_data, [6], 12, seed=4)
    # find each returned latent among the posterior means of EVERY training image: twelve distinct sixes
    every = encode_means(model, small_data.train_x)
    matches = [torch.nonzero((every - z).abs().max(1).values < 1e-5).ravel().tolist() for z in latents]
    assert all(len(m) == 1 for m in matches), "each latent is the posterior mean of exactly one training image"
    chosen = [m[0] for m in matches]
    assert len(set(chosen)) == 12 and bool((small_data.train_y[chosen] == 6).all())
    # another seed draws other sixes; every label gives every six
    assert not torch.allclose(train.goal_latents(model, small_data, [6], 12, seed=5), latents)
    assert len(train.goal_latents(model, small_data, [6], None, seed=4)) == int((small_data.train_y == 6).sum())


def test_only_the_gmm_run_is_limited_by_its_labels(tiny_data, tmp_path):
    """`train.py --model base --expert-labels 3` trains the base; a GMM from 3 labels gets one component."""
    cfg = tiny_config(expert_labels=3)
    train.get_model("base", cfg, tiny_data, DEVICE, str(tmp_path), log=lambda _: None, progress=False)
    _, prior, _ = train.get_model("gmm", cfg, tiny_data, DEVICE, str(tmp_path), log=lambda _: None, progress=False)
    assert len(prior.weights) == 1


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "result.json"
    cache.write_json(str(path), {"good": 1})
    with pytest.raises(RuntimeError):
        with cache.atomic_path(str(path)) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("interrupted")
    assert cache.read_json(str(path)) == {"good": 1} and os.listdir(tmp_path) == ["result.json"]


def test_content_hash_sees_one_changed_weight():
    model = ConvVAE(2)
    before = cache.content_hash(model.state_dict())
    assert cache.content_hash({k: v.clone() for k, v in model.state_dict().items()}) == before
    with torch.no_grad():
        model.decoder[0].weight[0, 0] += 1e-6
    assert cache.content_hash(model.state_dict()) != before

"""The study: label budgets, the GMM with few labels, the summary over seeds, and a --quick run end to end."""
import json
import os

import pytest
import torch

import study
import train
from conftest import run_script


def test_label_budget_is_a_seeded_nested_subset_of_the_goal_images(small_data):
    labels = small_data.train_y
    every = train.labelled_goal_indices(labels, [6, 9])
    assert torch.equal(every, torch.isin(labels, torch.tensor([6, 9])).nonzero().squeeze(1))
    ten, hundred = (train.labelled_goal_indices(labels, [6, 9], n, seed=3) for n in (10, 100))
    assert len(ten) == 10 and len(hundred) == 100
    assert set(ten.tolist()) <= set(hundred.tolist()) <= set(every.tolist())
    assert torch.equal(ten, train.labelled_goal_indices(labels, [6, 9], 10, seed=3))
    assert not torch.equal(ten, train.labelled_goal_indices(labels, [6, 9], 10, seed=4))
    assert torch.equal(train.labelled_goal_indices(labels, [6], 10 ** 6), train.labelled_goal_indices(labels, [6]))


def test_few_labels_get_fewer_gmm_components_or_a_clear_error(small_data):
    assert study.gmm_components_for(10, 5, 4) == 2
    assert study.gmm_components_for(3, 5, 4) == 1
    assert study.gmm_components_for(1000, 5, 4) == 5
    with pytest.raises(train.ConfigError, match="exceed the 10 expert-labelled"):
        train.check_goal_data(train.RunConfig(expert_labels=10, gmm_components=11).validate(), small_data)
    with pytest.raises(train.ConfigError, match="expert labels"):
        train.RunConfig(expert_labels=0).validate()
    # ten labels, two components: the prior is fitted and usable
    cfg = train.RunConfig(latent_dim=2, expert_labels=10, gmm_components=2).validate()
    train.check_goal_data(cfg, small_data)
    from models import ConvVAE
    prior = train.fit_prior("gmm", ConvVAE(2), small_data, cfg)
    assert torch.isfinite(prior.log_prob(prior.sample(100))).all()


def test_summary_gives_mean_and_spread_over_seeds():
    def row(seed, rate):
        metrics = {k: 1.0 for k in study.METRICS}
        return {"seed": seed, "goals": [6, 9], "method": "m", "beta": 1.0, "label_budget": None, "n_labels": 5,
                **metrics, "target_rate": rate, "goal_rates": {"6": rate, "9": 0.0}}
    summary = study.summarise([row(0, 0.2), row(1, 0.4), row(2, 0.6)])
    assert len(summary) == 1 and summary[0]["seeds"] == [0, 1, 2]
    assert summary[0]["target_rate"]["mean"] == pytest.approx(0.4)
    assert summary[0]["target_rate"]["std"] == pytest.approx(0.2)
    assert summary[0]["rate_9"] == {"mean": 0.0, "std": 0.0}


def test_quick_study_writes_every_figure_and_number(tmp_path, data_dir):
    result = run_script("study.py", "--quick", "--out-dir", str(tmp_path), "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = tmp_path / "figures"
    for name in ("study_beta_goal.png", "study_beta_gmm.png", "study_budget.png", "study_goals.png"):
        assert os.path.getsize(figures / name) > 5000, name
    report = json.load(open(figures / "study.json"))
    settings = report["settings"]
    assert report["seeds"] == settings["seeds"] and len(settings["seeds"]) >= 3
    methods = {e["method"] for e in report["summary"]}
    assert {study.BASE, study.CVAE, study.POST_GOAL, study.POST_GMM, study.GOAL, study.GMM,
            study.GOAL_LO, study.GMM_LO} <= methods
    for entry in report["summary"]:
        assert len(entry["seeds"]) == len(settings["seeds"])
        for key in study.METRICS + tuple(f"rate_{g}" for g in entry["goals"]):
            assert set(entry[key]) == {"mean", "std"}, key
    betas = {e["beta"] for e in report["summary"] if e["method"] == study.GOAL}
    assert betas == set(settings["betas"])
    budgets = {e["label_budget"] for e in report["summary"] if e["method"] == study.GMM_LO and e["goals"] == [6]}
    assert budgets == set(settings["label_budgets"])
    assert "| CVAE |" in open(figures / "study.md").read()
    # a rerun with the same settings reuses every seed instead of training again
    again = run_script("study.py", "--quick", "--out-dir", str(tmp_path), "--data-dir", data_dir)
    assert again.returncode == 0 and again.stdout.count("reusing") >= len(settings["seeds"])
    assert json.load(open(figures / "study.json"))["summary"] == report["summary"]

"""The study on Dask: its plan, a quick run end to end, an interrupted run resumed, and a separately started cluster."""
import copy
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import constants
import samplers
import study
import study_report
import units
from conftest import ROOT, finished_units, run_main_in_process, run_script


def test_the_plan_puts_every_unit_after_the_units_it_needs(data_dir, tmp_path):
    plan = study.plan(study.study_settings("full"), data_dir, str(tmp_path))
    seen = set()
    for name, unit in plan.items():
        assert set(unit.deps) <= seen, name  # dependencies are planned (and submitted) first
        seen.add(name)
    names = set(plan)
    for dataset in ("mnist", "fashion-mnist"):
        assert {f"{dataset}/default/s0/base", f"{dataset}/default/s0/cvae", f"{dataset}/seed-design/s0/base"} <= names
        for c in range(10):  # every class is the goal, from 1, 3 and 10 labels, each from 3 draws of the labels
            assert f"{dataset}/default/s0/g{c}/references" in names
            assert f"{dataset}/seed-design/s0/g{c}/references" in names
            drawn = {(u.spec["run"]["expert_labels"], u.spec["run"]["label_draw"]) for u in plan.values()
                     if u.func is units.evaluation_unit and u.spec["name"].startswith(f"{dataset}/default/s0/g{c}/samplers")}
            assert drawn == {(b, d) for b in (1, 3, 10) for d in (0, 1, 2)}
            few = [u.spec["sources"] for u in plan.values() if u.spec["name"] == f"{dataset}/default/s0/g{c}/samplers-n1-d0"]
            assert [s["source"] for s in few[0]] == ["graph", "pseudo-label", "exemplar"]
    seed_design = plan["mnist/seed-design/s0/base"].spec["run"]
    assert (seed_design["arch"], seed_design["likelihood"], seed_design["latent_dim"]) == ("conv", "gaussian", 4)
    bernoulli = plan["fashion-mnist/bernoulli/s0/base"].spec["run"]  # the default it is measured against
    assert bernoulli == {**plan["fashion-mnist/default/s0/base"].spec["run"], "likelihood": "bernoulli"}
    assert plan["fashion-mnist/default/s0/base"].spec["run"]["likelihood"] == "calibrated-gaussian"
    assert {unit.spec["device"] for unit in plan.values()} == {"cpu"}  # every unit, trainings included
    # the heaviest training first: the residual body's, then the conv body's, then the rest
    heaviest = sorted(plan.values(), key=lambda unit: -unit.weight)
    assert {unit.name for unit in heaviest[:2]} == {"mnist/resnet/s0/base", "fashion-mnist/resnet/s0/base"}
    assert all(unit.func is units.vae_unit for unit in heaviest[:2 + 2 * 6])  # every base VAE and CVAE
    on_gpu = study.plan(study.study_settings("quick"), data_dir, str(tmp_path), torch.device("cuda"))
    assert {unit.spec["device"] for unit in on_gpu.values()} == {"cuda"}


def test_a_device_this_machine_lacks_is_one_clear_error_before_any_unit(tmp_path, data_dir):
    """study.py --device checks the device where the error is one line, not inside every worker."""
    if torch.cuda.is_available():
        pytest.skip("this machine has the device")
    result = run_main_in_process("study", "--quick", "--device", "cuda", "--out-dir", str(tmp_path),
                                 "--data-dir", data_dir)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: device 'cuda' is not available on this machine"], result.stderr
    assert not (tmp_path / "units").exists()


def measure_sources(spec, *parents):
    """A stand-in evaluation unit: one row per source; a source named "broken" cannot be measured."""
    if any(source["source"] == "broken" for source in spec["sources"]):
        raise ValueError("the broken sampler cannot be fitted")
    return {"rows": [{"source": source["source"], "parents": list(parents)} for source in spec["sources"]]}


def make_one(spec):
    return 1


def test_a_unit_with_one_unmeasurable_source_keeps_the_numbers_of_the_others():
    from dask.distributed import Client, LocalCluster
    sources = [{"source": name} for name in ("graph", "broken", "exemplar")]
    plan_units = {"parent": study.Unit("parent", make_one, {"name": "parent"}, weight=5),
                  "eval": study.Unit("eval", measure_sources, {"name": "eval", "sources": sources}, ("parent",)),
                  "fine": study.Unit("fine", measure_sources, {"name": "fine", "sources": sources[:1]}, ("parent",))}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        submitted = []
        submit = client.submit
        client.submit = lambda *args, **kwargs: submitted.append(kwargs) or submit(*args, **kwargs)
        results, failed, split = study.run_units(plan_units, client, progress=False)
    # keyed by the unit's function (its Dask task group), the heaviest first
    assert [k["key"].split("-")[0] for k in submitted[:3]] == ["make_one", "measure_sources", "measure_sources"]
    assert [k["priority"] for k in submitted[:3]] == [5, 1, 1] and all(k["pure"] is False for k in submitted)
    assert set(split) == {"eval/graph", "eval/broken", "eval/exemplar"}
    assert set(failed) == {"eval/broken"} and "cannot be fitted" in failed["eval/broken"]
    assert results["eval/graph"]["rows"] == [{"source": "graph", "parents": [1]}]
    assert results["eval/exemplar"]["rows"] == [{"source": "exemplar", "parents": [1]}]
    assert "fine" in results and "eval" not in results


def test_summary_gives_mean_and_spread_over_the_label_draws():
    def row(seed, rate):
        metrics = {k: 1.0 for k in study.METRICS}
        return {"seed": 0, "draw": seed, "design": "default", "dataset": "mnist", "latent_dim": 4, "goals": [6, 9],
                "method": "m", "source": "s",
                "beta": None, "labels": "10", **metrics, "target_rate": rate, "goal_rates": {"6": rate, "9": 0.0},
                "class_histogram": [0.0] * 10}
    summary = study.summarise([row(0, 0.2), row(1, 0.4), row(2, 0.6)])
    assert len(summary) == 1 and summary[0]["draws"] == [0, 1, 2]
    assert summary[0]["target_rate"]["mean"] == pytest.approx(0.4)
    assert summary[0]["target_rate"]["std"] == pytest.approx(0.2)
    assert summary[0]["rate_9"] == {"mean": 0.0, "std": 0.0}


def test_quick_study_writes_every_figure_and_number(quick_study):
    out, report_json, _ = quick_study
    assert os.path.getsize(out / "figures" / "study_classes.png") > 5000
    settings = report_json["settings"]
    assert report_json["engine"]["address"] == "local" and report_json["engine"]["threads_per_worker"] == 1
    assert report_json["engine"]["driver"] == study.machine()  # what the numbers' last digits depend on
    methods = {e["method"] for e in report_json["summary"]}
    assert {units.REAL, units.CEILING, units.CVAE, units.CVAE_POSTERIORS} <= methods
    # the reference is drawn from the class's posteriors, not N(0, I) with the label: another sample, other numbers
    cvae = {e["method"]: e for e in report_json["summary"] if e["method"] in (units.CVAE, units.CVAE_POSTERIORS)}
    assert cvae[units.CVAE]["fd_goal"]["mean"] != cvae[units.CVAE_POSTERIORS]["fd_goal"]["mean"]
    assert {units.sampler_method(name) for name in samplers.names()} <= methods
    assert {tuple(e["goals"]) for e in report_json["summary"]} == {(6,), (6, 9)}
    for entry in report_json["summary"]:
        assert entry["seeds"] == settings["seeds"]
        for key in study.METRICS:
            assert set(entry[key]) == {"mean", "std"}, key
    written = open(out / "figures" / "study.md").read()
    assert study_report.study_markdown(report_json) in written and "every sampler, every class" in written
    logs = [f for _, _, files in os.walk(out / "logs") for f in files]
    assert len(logs) == report_json["engine"]["units"]  # one log file per unit, the killed run's appended to


def test_a_killed_study_resumes_with_only_what_the_kill_lost(quick_study, data_dir):
    """The quick_study fixture killed its first run (driver and local cluster) once four evaluation units had
    finished: the rerun reused every unit the kill left on disk (trainings and evaluations alike) and computed
    exactly the rest. That its numbers are those of an uninterrupted run is checked by the separately started
    cluster's run below."""
    out, resumed, finished = quick_study
    assert finished >= 4 + 2  # four evaluations, and at least the classifier and base VAE every evaluation needs
    assert resumed["engine"]["computed"] == resumed["engine"]["units"] - finished
    planned = study.plan(study.study_settings("quick"), data_dir, str(out))
    assert finished_units(out) == len(planned) == resumed["engine"]["units"]  # one result per unit, none torn


def test_study_runs_on_a_separately_started_cluster(quick_study, tmp_path, data_dir):
    """`dask scheduler` and `dask worker` started on their own (as on a cluster); `--address` joins them. It runs
    the quick study uninterrupted, and its numbers are exactly those of the killed and resumed run."""
    _, resumed, _ = quick_study
    scheduler_file = tmp_path / "scheduler.json"
    env = dict(os.environ, PYTHONPATH=ROOT)
    started = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--scheduler-file", str(scheduler_file),
                                 "--no-dashboard", "--port", "0"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        started.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", "--scheduler-file",
                                         str(scheduler_file), "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
                                        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True))
        address = json.load(open(scheduler_file))["address"]
        result = run_script("study.py", "--quick", "--address", address, "--out-dir", str(tmp_path / "out"),
                            "--data-dir", data_dir)
        assert result.returncode == 0, result.stderr[-3000:]
    finally:
        for process in started:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    joined = json.load(open(tmp_path / "out" / "figures" / "study.json"))
    assert joined["engine"]["address"] == address and joined["engine"]["workers"] == 2
    assert joined["engine"]["computed"] == joined["engine"]["units"]  # every unit ran on that cluster
    assert joined["rows"] == resumed["rows"] and joined["summary"] == resumed["summary"]


def test_dask_groups_the_units_by_their_function_not_by_their_dataset(data_dir):
    """study.unit_key: Dask's task group (key_split) is the unit's function for every unit of the plan, so that the
    dependency-free trainings form one group of root tasks, whichever dataset's name leads the unit's name."""
    from dask.utils import key_split
    plan_units = study.plan(study.study_settings(), data_dir, "out")
    groups = {unit.name: key_split(study.unit_key(unit, "1234-5678")) for unit in plan_units.values()}
    assert groups["fashion-mnist/resnet/s0/base"] == "vae_unit" == groups["mnist/default/s0/cvae"]
    assert {unit.func.__name__ for unit in plan_units.values()} == set(groups.values()) == {
        "vae_unit", "classifier_unit", "unlabelled_unit", "evaluation_unit"}
    assert all(groups[name] == unit.func.__name__ for name, unit in plan_units.items())
    assert len({study.unit_key(unit, "1") for unit in plan_units.values()}) == len(plan_units)  # unique keys


def test_an_unreachable_cluster_is_one_clear_error(tmp_path, data_dir):
    result = run_script("study.py", "--quick", "--address", "tcp://127.0.0.1:9", "--out-dir", str(tmp_path),
                        "--data-dir", data_dir, env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
    assert "tcp://127.0.0.1:9" in result.stderr


def fake_study(seeds=(0,), draws=(0, 1)):
    """A study.json as study.py writes it, with made-up numbers: two designs, three classes, two goals together."""
    settings = {"seeds": list(seeds), "draws": list(draws), "datasets": ["mnist"],
                "designs": {"default": {}, "seed design": {"latent_dim": 4}}, "classes": [0, 3, 6],
                "goal_sets": {"mnist": [[6, 9]]}, "label_curve": [1, 10], "few_label_samplers": ["graph"],
                "eval_samples": 100}
    metrics = {k: 0.95 for k in study.METRICS}
    rows = []

    def row(seed, draw, design, goals, method, labels, rate):
        histogram = [0.0] * 10
        for g in goals:
            histogram[g] = rate / len(goals) + (0.05 * draw if g == goals[0] and len(goals) > 1 else 0.0)
        rows.append({**metrics, "dataset": "mnist", "design": design, "latent_dim": 16, "seed": seed, "draw": draw,
                     "goals": list(goals), "method": method, "source": "s", "beta": None, "labels": labels,
                     "target_rate": sum(histogram), "class_histogram": histogram,
                     "goal_rates": {str(g): histogram[g] for g in goals}})

    for seed in seeds:
        for design in settings["designs"]:
            for c in settings["classes"]:
                row(seed, None, design, [c], units.REAL, None, 0.99)
                row(seed, None, design, [c], units.CEILING, None, 0.9 if design == "default" else 0.8)
        for c in settings["classes"]:
            row(seed, None, "default", [c], units.CVAE, "every image", 0.3)
            row(seed, None, "default", [c], units.CVAE_POSTERIORS, "every image", 0.97 - 0.1 * c)
            for draw in draws:
                for labels in ("1", "10"):
                    row(seed, draw, "default", [c], units.sampler_method("graph"), labels, 0.5 + 0.2 * draw + 0.01 * c)
                    rows[-1]["found"] = {str(c): {"images": 100, "purity": 0.6 + 0.1 * draw + 0.01 * c + 0.01 * seed,
                                                  "recall": 0.9 - 0.1 * draw + 0.01 * c}}
        for draw in draws:
            row(seed, draw, "default", [6, 9], units.sampler_method("graph"), "10", 0.9 - 0.1 * draw)
    return {"settings": settings, "rows": rows, "engine": {"units": 1, "workers": 2, "computed": 1},
            "wall_seconds": 60.0, "failed_sources": {}}


@pytest.mark.parametrize("seeds", [(0,), (0, 1)])
def test_the_study_report_shows_every_draw_its_spread_and_its_worst(seeds):
    """Every draw (of every seed) counts: the worst draw is named, the spread over draws is not zero."""
    report_json = fake_study(seeds)
    table, prose = study_report.study_markdown(report_json), study_report.study_prose(report_json)
    assert "| 3 | 80.0 ± 0.0 |" not in table  # the ceiling columns hold the two designs' own numbers
    references = "90.0 | 97.0" if len(seeds) == 1 else "90.0 (90.0) | 97.0 (97.0)"  # one value, or mean (worst)
    assert f"| 0 | {references} | 60.0 (50.0), 0.95 | 60.0 (50.0), 0.95 |" in table
    # the ceiling table shows the CVAE both ways; the comparisons use the one drawn from its class's posteriors
    assert "| CVAE from N(0, I), default | CVAE from its class's posteriors, default |" in table
    assert "| 30.0 | 97.0 | **no** |" in table.replace(" ± 0.0", "")
    assert "| 6 | 99.0% | 90.0 | 80.0 | 30.0 | 37.0 | **no** |" in table.replace(" ± 0.0", "")
    # classes 0, 3, 6; graph from 10 labels 0.6 + 0.01 c on average, the CVAE 0.97 - 0.1 c: only 6 within 2 points
    assert "against the fully labelled CVAE, drawn from its class's posteriors:** within 2 points (or above) on 1 of " \
        "3 classes; the largest shortfall is 0, where `graph` is 37.0 points below the CVAE" in prose
    # the reference draws its label (>= 95% of the 90% ceiling) for class 0 only
    assert "rate or more for 1 of 3 classes (mean 67.0%, worst 37.0%)" in prose
    # above the 90% ceiling on class 0 only; against min(reference, ceiling) only class 6 is within 2 points
    assert "It stands above the default decoder ceiling on 1 of 3 classes (by up to 7.0 points, 0)" in prose
    assert "against the lower of it and the ceiling, the best sampler is within 2 points on 1 of 3 classes." in prose
    assert "± 0.0" not in table.split("Goals 6 + 9 together")[1]  # the pair's share over two draws has a spread
    assert "worst single draw: class 0, draw 0" in prose and f"met on 0 of {3 * 2 * len(seeds)} class draws" in prose
    # what discovery took as the goal: the mean over every class draw, and the draw of each worst
    of_seed = " of seed 0" if len(seeds) > 1 else ""
    mean_purity = 0.6 + 0.05 + 0.03 + (0.005 if len(seeds) > 1 else 0.0)
    assert (f"from 10 labels purity {mean_purity:.3f} (worst 0.600, class 0, draw 0{of_seed}), recall 0.880 "
            f"(worst 0.800, class 0, draw 1{of_seed})") in prose


def test_a_missing_reference_reads_n_a_not_nan():
    """A source that failed leaves no rows: its cells say n/a (the mean of nothing is no number)."""
    report_json = fake_study((0,))
    report_json["rows"] = [r for r in report_json["rows"] if r["method"] != units.CVAE_POSTERIORS]
    table = study_report.study_markdown(report_json)
    assert "| 0 | 99.0% | 90.0 | 80.0 | 30.0 | n/a | **no** |" in table and "nan" not in table
    assert "against the fully labelled CVAE" not in study_report.study_prose(report_json)


def test_the_design_figure_shows_each_designs_samples(tmp_path):
    """study.design_samples: one row of N(0, I) samples per dataset and design, from the units' base checkpoints."""
    import models
    results, settings = {}, {"datasets": ["mnist"], "designs": {"default": {}, "seed design": {"latent_dim": 4}},
                             "seeds": [0]}
    for design, latent_dim in (("default", 16), ("seed-design", 4)):
        model = models.ConvVAE(latent_dim)
        path = str(tmp_path / f"{design}.pt")
        models.save_checkpoint(path, model, models.StandardNormalPrior(latent_dim), {}, [])
        results[f"mnist/{design}/s0/base"] = {"path": path}
    figure = study.design_samples(study.design_bases(results, settings), str(tmp_path), n=4)
    assert figure.endswith("study_designs.png") and os.path.getsize(figure) > 2000


def test_each_designs_cost_is_read_from_its_checkpoint_and_reported(tmp_path):
    """study.design_costs: parameters, epochs and the last epoch's seconds of each design's base checkpoint; the
    decoder line of the prose names them per design (a design without a checkpoint says nothing of its cost)."""
    import models
    results, settings = {}, {"datasets": ["mnist"], "designs": {"default": {}, "seed design": {"latent_dim": 4}},
                             "seeds": [0]}
    model = models.ConvVAE(4)
    path = str(tmp_path / "seed.pt")
    history = [{"epoch": 1, "val_loss": 2.0, "val_kl": 9.0, "seconds": 40.0},
               {"epoch": 2, "val_loss": 1.0, "val_kl": 3.25, "seconds": 81.4},
               {"epoch": 3, "val_loss": 1.5, "val_kl": 0.0, "seconds": 122.0}]  # epoch 2's weights are kept
    models.save_checkpoint(path, model, models.StandardNormalPrior(4), {}, history)
    results["mnist/seed-design/s0/base"] = {"path": path}
    costs = study.design_costs(study.design_bases(results, settings))
    parameters = sum(p.numel() for p in model.parameters())
    assert costs == {"mnist": {"seed design": {"parameters": parameters, "epochs": 3, "train_seconds": 122.0,
                                               "reused": False, "val_kl": 3.25}}}
    report_json = {**fake_study(), "design_costs": costs}
    prose = study_report.study_prose(report_json)
    assert "its base VAE's parameters, epochs and training seconds, as its checkpoint records them from the run " \
        "that trained it, and its validation KL per image" in prose
    assert (f"seed design 0 of 3, 0.9, 0.950 (worst 0.950), {parameters:,} parameters, 3 epochs in 122 s, "
            f"KL 3.25 nats.") in prose
    assert "default 0 of 3, 0.9, 0.950 (worst 0.950);" in prose  # no checkpoint, no cost
    results["mnist/seed-design/s0/base"]["cached"] = True  # kept from an earlier run: said so
    assert "3 epochs in 122 s (an earlier run), KL 3.25 nats." in study_report.study_prose(
        {**fake_study(), "design_costs": study.design_costs(study.design_bases(results, settings))})
    collapsed = {"parameters": 10, "epochs": 1, "train_seconds": 5.0, "val_kl": -6.6e-10}  # rounding below 0
    assert study_report.cost_phrase(collapsed) == ", 10 parameters, 1 epoch in 5 s, KL 0.00 nats"
    results["mnist/default/s0/base"] = {"path": str(tmp_path / "missing.pt")}  # unreadable here: left out
    assert set(study.design_costs(study.design_bases(results, settings))["mnist"]) == {"seed design"}
    assert "cost to train" not in study_report.study_prose(fake_study())


def test_the_fully_labelled_reference_draws_each_goal_from_its_class_posteriors(small_data):
    """units.class_posteriors: per goal, the CVAE's posteriors of every training image of that class under that
    label, decoded with the label; with several goals each draw picks one at random (a wrong mask, label or part order
    fails)."""
    import models
    torch.manual_seed(0)
    cvae = models.ConditionalVAE(3).eval()
    reference = units.class_posteriors(cvae, small_data, [3, 5])
    for part, goal in zip(reference.parts, (3, 5)):
        images = small_data.train_x[small_data.train_y == goal]
        mu, logvar = models.encode_posteriors(cvae, images, labels=torch.full((len(images),), goal))
        torch.testing.assert_close(part.means, mu)
        torch.testing.assert_close(part.log_variances, logvar)
    assert reference.generator is cvae and reference.labels.tolist() == [3, 5]
    torch.manual_seed(2)
    z_parts, part = reference.sample_parts(4000)
    torch.manual_seed(2)
    z, labels = reference.sample_labelled(4000)
    torch.testing.assert_close(z, z_parts)
    assert torch.equal(labels, torch.tensor([3, 5])[part])  # each z decoded with the label of the class it came from
    assert z.shape == (4000, 3) and abs((labels == 3).float().mean().item() - 0.5) < 0.05
    torch.manual_seed(1)
    images = models.decode_prior_samples(cvae, reference, 8)
    torch.manual_seed(1)
    z, labels = reference.sample_labelled(8)
    torch.testing.assert_close(images, cvae.decode(z, labels))


def test_a_variant_is_the_default_designs_whole_study_with_its_settings_changed(data_dir, tmp_path):
    """study.py --variant: every unit of the default design (samplers too), each with the variant's settings; no
    other design, and nothing else of the plan changes."""
    settings = study.variant_settings("latent-16", "quick")
    assert settings["designs"] == {"default": {}} and settings["run"]["latent_dim"] == 16
    assert {**settings, "run": {}, "designs": {}} == {**study.study_settings("quick"), "run": {}, "designs": {}}
    variant, default = (study.plan(s, data_dir, str(tmp_path)) for s in (settings, study.study_settings("quick")))
    assert set(variant) == set(default)  # the quick study holds only the default design
    for name, unit in variant.items():
        assert unit.spec["run"] == {**default[name].spec["run"], "latent_dim": 16}, name
    # the same classifier (its identity holds none of the VAEs' settings), another base VAE
    kinds = {kind: [study.config.RunConfig(**plan[name].spec["run"]).for_artefact(kind)
                    for plan in (variant, default)] for kind, name in
             (("classifier", "mnist/classifier"), ("base", "mnist/default/s0/base"))}
    assert kinds["classifier"][0] == kinds["classifier"][1] and kinds["base"][0] != kinds["base"][1]
    assert any("samplers" in name for name in variant)


@pytest.mark.parametrize("args, message", [
    (["--variant", "latent-16", "--latent-dim", "8"], "--variant sets the design and the settings itself"),
    (["--variant", "latent-16", "--designs", "default"], "--variant sets the design and the settings itself"),
    (["--designs", "default", "latent 9"], "unknown design(s) 'latent 9'"),
    (["--latent-dim", "0"], "latent_dim (--latent-dim) must be an integer >= 1, got 0"),
    (["--variant", "latent-9"], "invalid choice: 'latent-9'"),
    (["--seed", "3"], "unrecognized arguments: --seed 3"),  # the plan sets the seeds (STUDY_SEEDS)
])
def test_a_study_flag_that_cannot_work_is_one_clear_error_before_any_unit(args, message, tmp_path, data_dir):
    result = run_main_in_process("study", "--quick", *args, "--out-dir", str(tmp_path), "--data-dir", data_dir)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert not (tmp_path / "units").exists()


def test_the_study_sets_its_planned_settings_itself():
    with pytest.raises(study.config.ConfigError, match="the study sets goals, seed itself"):
        study.with_overrides(study.study_settings("quick"), run={"seed": 3, "goals": [1]})


def test_the_variant_block_sets_each_criterion_of_the_default_beside_the_variants():
    default = fake_study(draws=(0, 1, 2))
    variant = fake_study(draws=(0, 1, 2))
    # the variant has the settings of the default study's "seed design", whose ceilings then stand beside it
    variant["settings"] = {**variant["settings"], "designs": {"default": {}}, "run": {"latent_dim": 4}}
    for row in variant["rows"]:  # the variant draws 6 points more of every goal, and reconstructs more sharply
        row["target_rate"] = min(1.0, row["target_rate"] + 0.06)
        row["fd_goal"] = 0.5
    for row in default["rows"]:  # the default study's seed design: its own distances, so its column is its own
        if row["design"] == "seed design":
            row["fd_goal"] = 2.0
    default["classifier_test_accuracy"], variant["classifier_test_accuracy"] = {"mnist": 0.9933}, {"mnist": 0.9942}
    block = study_report.variant_block(default, variant, "x")
    assert f"| | latent_dim {constants.LATENT_DIM} (the default) | latent_dim 4 | seed design, in the default's " \
        "study |" in block
    assert "`figures/study-x/study.json`" in block and "1 trained seed, every class, 3 label draws" in block
    # each study's own judge: its accuracy, and how far the two judges' rates on the same real images lie apart
    assert "MNIST 99.33% and 99.42%, their rates on the real test images of a class up to 1.0 points apart" in block
    assert "for which the two have no common yardstick" in block  # their real rows differ
    alike = copy.deepcopy(variant)  # a judge that measures every real goal class as the default's does
    alike["rows"] = [r for r in alike["rows"] if r["method"] != units.REAL] \
        + [r for r in default["rows"] if r["method"] == units.REAL]
    assert "the two judges measure every real goal class alike" in study_report.variant_block(default, alike, "x")
    # graph from 10 labels, classes 0, 3, 6, draws 0-2: 0.5 + 0.2 draw + 0.01 c (the variant 6 points more, at most
    # 100%: class 6's draw 2 is 1.0, not 1.02); the worst is class 0, draw 0; the target (within 1 point of the
    # ceiling, 0.90 and 0.96) only on draw 2, on both, so no draw is listed as met by one of them only
    assert "| `graph` from 10 labels: target rate, mean (worst class draw); class draws meeting the target (at most " \
           "1 point below its ceiling, precision and coverage ≥ 0.9) | 73.0% (50.0%, class 0, draw 0); 3 of 9 " \
           "| 78.8% (56.0%, class 0, draw 0); 3 of 9 | not measured |" in block
    assert "- from 10 labels: met on the default only: none. Met on the variant only: none." in block
    # the ceilings: the default's 0.90, the variant's 0.96, the default study's seed design 0.80 (of real 0.99)
    assert "| classes whose decoder ceiling reaches 95% of real | 0 of 3 | 3 of 3 | 0 of 3 |" in block
    assert "| ceiling: Fréchet distance to real goal images, mean (worst class) | 0.9 (0.9) | 0.5 (0.5) " \
           "| 2.0 (2.0) |" in block
    assert "| goals 6 + 9 from 10 labels each, `graph`: goal images, mean (worst draw); the smallest share of one " \
           "goal | 85.0% (80.0%); 43.8% | 91.0% (86.0%); 40.7% | not measured |" in block
    # per class: the variant judge's real rate, the ceiling, then graph from 10 and from 1 label, default -> variant
    assert "| 3 | 100.0 | 90.0 → 96.0 | 73.0 (53.0) → 79.0 (59.0) | 73.0 (53.0) → 79.0 (59.0) |" in block


def test_the_variant_block_lists_the_draws_whose_verdict_differs():
    default, variant = fake_study(draws=(0, 1, 2)), fake_study(draws=(0, 1, 2))
    variant["settings"] = {**variant["settings"], "designs": {"default": {}}, "run": {"latent_dim": 32}}
    for row in variant["rows"]:  # the variant's class 3 from 10 labels, draw 2, falls below its ceiling
        if row["goals"] == [3] and row["labels"] == "10" and row["draw"] == 2:
            row["target_rate"] = 0.5
        if row["goals"] == [0] and row["labels"] == "10" and row["draw"] == 1:
            row["target_rate"] = 0.95  # and its class 0, draw 1, rises to it
    block = study_report.variant_block(default, variant, "x")
    assert "- from 10 labels: met on the default only: class 3, draw 2. Met on the variant only: class 0, draw 1." \
        in block
    assert "- from 1 label: met on the default only: none. Met on the variant only: none." in block
    assert study_report.STALE_VARIANT not in block  # neither records its code
    default["code"], variant["code"] = {"base": "a", "classifier": "c"}, {"base": "b", "classifier": "c"}
    block = study_report.variant_block(default, variant, "x")
    assert f"**{study_report.STALE_VARIANT}**: the code fingerprints of base differ" in block
    assert "`python study.py --variant x` measures it again" in block
    variant["code"] = {"base": "a"}  # a kind recorded on one side only differs too
    assert "the code fingerprints of classifier differ" in study_report.variant_block(default, variant, "x")


def test_a_local_clusters_workers_keep_glibcs_adaptive_allocation():
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns off glibc's adaptive mmap threshold:
    every array over 128 KiB is then mapped and faulted in afresh (40-45% of a study worker's CPU time)."""
    client, cluster, engine = study.connect(None, 1)
    try:
        assert engine == {"address": "local", "workers": 1}
        assert set(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == {None}
    finally:
        client.close()
        cluster.close()

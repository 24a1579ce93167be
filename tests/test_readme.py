"""The README quotes only what the committed JSON holds, from full runs with today's settings."""
import json
import os
import re
import statistics

import pytest

import cache
import config
import constants
import report
import study
import study_report
import units
from conftest import ROOT

README = os.path.join(ROOT, "README.md")
RESULTS = {"mnist": os.path.join(ROOT, "figures", "results.json"),
           "fashion-mnist": os.path.join(ROOT, "figures", "fashion-mnist", "results.json")}
STUDY = os.path.join(ROOT, "figures", "study.json")
BENCH = os.path.join(ROOT, "figures", "bench.json")
VARIANTS = {name: os.path.join(ROOT, study_report.variant_study_path(name)) for name in constants.STUDY_VARIANTS}


def load(path):
    return json.load(open(path))


def class_draws(study_json, dataset, sampler, labels):
    """Every single-class row of `sampler` from `labels` on the default design, by class then draw: study_report's
    own index (Rows.get), over the study's classes."""
    rows = study_report.Rows(study_json)
    return [row for c in study_json["settings"]["classes"]
            for _, row in sorted(rows.get(dataset, [c], units.sampler_method(sampler), labels).items())]


def expected_blocks():
    blocks = {}
    for path in RESULTS.values():
        blocks.update(report.results_blocks(load(path)))
    blocks.update(study_report.study_blocks(load(STUDY)))
    blocks.update(study_report.variant_blocks(ROOT))
    blocks["bench"] = report.bench_markdown(load(BENCH))
    return blocks


def test_every_generated_block_is_what_its_json_gives():
    blocks = expected_blocks()
    assert set(blocks) == {"howto", "results-prose", "results-prose-fashion-mnist", "study", "study-prose", "bench",
                           *(f"study-{name}" for name in VARIANTS)}
    for name, text in blocks.items():
        assert report.read_block(name, README) == text, f"README block {name!r} differs from its JSON"
    for path in RESULTS.values():
        assert open(path.replace(".json", ".md")).read() == report.results_markdown(load(path))
    assert open(os.path.join(ROOT, "figures", "study.md")).read() == \
        blocks["study"] + "\n" + blocks["study-prose"] + study_report.full_tables(load(STUDY))
    assert open(os.path.join(ROOT, "figures", "bench.md")).read() == blocks["bench"]


@pytest.mark.parametrize("dataset", list(RESULTS))
def test_results_come_from_a_full_run_with_todays_settings(dataset):
    results = load(RESULTS[dataset])
    assert not results["quick"] and results["dataset"] == dataset
    assert results["config"] == config.RunConfig(dataset=dataset).validate().as_dict()
    assert results["code"] == cache.code_fingerprints(), "the results come from other code than today's: rerun alltests.py"
    assert results["label_budgets"] == ["all" if b is None else str(b) for b in constants.REPORT_LABEL_BUDGETS]
    assert results["reused"] == 0, "the committed time is not from scratch: rerun alltests.py into an empty folder"


def test_the_study_is_the_full_one_with_todays_settings_and_nothing_failed():
    result = load(STUDY)
    assert result["size"] == "full" and result["settings"] == json.loads(json.dumps(study.study_settings("full")))
    assert result["code"] == cache.code_fingerprints(), "the study comes from other code than today's: rerun study.py"
    assert not result["failed"] and result["engine"]["units"] == len(study.plan(study.study_settings("full"), "", ""))
    assert len(result["settings"]["draws"]) >= 2
    # the settings of the defaults the study ran with (constants.py is not fingerprinted): each design's latent size,
    # which its rows record, is today's (the variant blocks name the default's values from constants.py)
    for design, changes in result["settings"]["designs"].items():
        latent = config.RunConfig(**changes).latent_dim
        assert {r["latent_dim"] for r in result["rows"] if r["design"] == design} == {latent}, design
    for entry in result["summary"]:  # every draw, but where a sampler could not be fitted, which the README names
        if entry["method"].startswith("sampler: "):
            for draw in sorted(set(result["settings"]["draws"]) - set(entry["draws"])):
                unit = (f"{study.cell_name(entry['dataset'], entry['design'], entry['seeds'][0])}/"
                        f"g{''.join(map(str, entry['goals']))}/samplers-n{entry['labels']}-d{draw}/")
                assert any(name.startswith(unit) and units.sampler_method(name[len(unit):]) == entry["method"]
                           for name in result["failed_sources"]), (entry["method"], entry["labels"], draw)
    for name, error in result["failed_sources"].items():
        assert f"`{name}`: {error}" in report.read_block("study", README)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_variant_is_its_full_study_with_todays_settings_and_nothing_failed(name):
    variant = load(VARIANTS[name])
    settings = study.variant_settings(name)
    assert variant["size"] == "full" and variant["settings"] == json.loads(json.dumps(settings))
    if variant["code"] != cache.code_fingerprints():  # kept from earlier code, which its README block must say
        assert study_report.STALE_VARIANT in report.read_block(f"study-{name}", README), \
            f"the variant comes from older code: its README block must say so, or rerun study.py --variant {name}"
    assert not variant["failed"] and not variant["failed_sources"]
    assert variant["engine"]["units"] == len(study.plan(settings, "", ""))
    assert open(VARIANTS[name].replace(".json", ".md")).read() == study_report.study_markdown(variant) + "\n" \
        + study_report.study_prose(variant) + study_report.full_tables(variant)


def test_what_the_readme_says_of_the_residual_body_is_what_the_study_measured():
    """The Models section: the normalised residual body reconstructs every MNIST class (its ceiling reaches 95% of
    the real images' rate on each), its ceiling has the lowest mean Fréchet distance to real goal images of any design
    on both datasets, and no design's base VAE collapsed (KL warm-up and free bits "not needed")."""
    result = load(STUDY)
    rows = study_report.Rows(result)
    assert "reconstructs every MNIST class, and it has the lowest mean Fréchet distance" in open(README).read()
    assert study_report.design_ceilings(rows, "mnist", "resnet")[0] == len(result["settings"]["classes"])
    for dataset in result["settings"]["datasets"]:
        distance = {design: statistics.mean(row["fd_goal"] for row in
                                            study_report.design_ceilings(rows, dataset, design)[1])
                    for design in result["settings"]["designs"]}
        assert min(distance, key=distance.get) == "resnet", (dataset, distance)
        assert all(cost["val_kl"] > 1.0 for cost in result["design_costs"][dataset].values()), dataset


PREVIOUS = "latent-16"  # the variant that holds the default before this one


def test_the_readme_says_the_variant_is_judged_like_the_default_only_where_it_is():
    """The comparison paragraph says both studies ran on one machine, with the same classifier, and that the latent-16
    study's ceilings are those of the default study's design with its settings: each exactly."""
    default, variant = load(STUDY), load(VARIANTS[PREVIOUS])
    assert "Both studies ran on the same machine" in open(README).read()
    assert default["classifier_test_accuracy"] == variant["classifier_test_accuracy"]

    def ceilings(study, design):
        return {(r["dataset"], tuple(r["goals"])): (r["target_rate"], r["fd_goal"], r["recall_real"])
                for r in study["rows"] if r["method"] == units.CEILING and r["design"] == design}
    assert ceilings(default, "latent 16") == ceilings(variant, "default") != {}
    real = [{(r["dataset"], tuple(r["goals"])): r["target_rate"] for r in study["rows"] if r["method"] == units.REAL}
            for study in (default, variant)]
    assert real[0] == real[1] != {}  # the one classifier's rates on the same real test images


def _targets_met(study_json, dataset, labels, sampler="graph"):
    """{(class, draw): whether `sampler` from `labels` meets the study's target there}, the ten-label rule at the
    curve's last budget: study_report.targets_of_few_labels, keyed by class draw (one trained seed)."""
    rows = study_report.Rows(study_json)
    most = str(max(study_json["settings"]["label_curve"]))
    outcomes = study_report.targets_of_few_labels(rows, dataset, units.sampler_method(sampler), labels, labels == most)
    met = {(c, key[1]): ok for c, key, ok in outcomes}
    assert len(met) == len(outcomes)  # one outcome per class draw
    return met


def _found_purity(row):
    return row["found"][str(row["goals"][0])]["purity"]


def test_the_comparison_paragraph_is_what_the_two_studies_measured():
    """Why a latent of 32: both studies measured with the same code; the sharper ceiling on both datasets and the same
    classes within reach; on MNIST at 16 two 9 draws from one label mixed with the 4s, at 32 every class draw's found
    images nearly pure at every budget, more targets met from one label and a higher worst class draw from one label
    (far higher) and three; from ten labels one 7 draw just short of the coverage target at 32 and just reaching it at
    16; on Fashion-MNIST about as many targets met at every budget (within one), but other draws: a sneaker draw
    gained and a sandal draw lost from ten labels, a pullover draw lost from three; two sandal draws from ten labels
    pure but narrow (recall about a twentieth, coverage low); the best sampler's samples from ten labels further from
    the real goal images on average, because of the sandal's (most classes' closer); the sneaker's third draw from
    three turned from mostly sneakers to mostly ankle boots, and from one label finding only its labelled image; a
    few thousand parameters more."""
    default, previous = load(STUDY), load(VARIANTS[PREVIOUS])
    text = " ".join(open(README).read().split())
    assert constants.LATENT_DIM == 32 and constants.STUDY_VARIANTS[PREVIOUS] == {"latent_dim": 16}
    assert default["code"] == previous["code"] and default["engine"]["driver"] == previous["engine"]["driver"]
    assert study_report.STALE_VARIANT not in report.read_block(f"study-{PREVIOUS}", README)
    assert ("On MNIST a latent of 32 gives the sharper ceiling (a lower Fréchet distance to real goal images, a higher "
            "recall against them), and so it does on Fashion-MNIST, where the same classes stay out of the decoder's "
            "reach") in text

    def ceiling(study, dataset, key):  # the mean over classes of the study's own (default) design's ceilings
        return statistics.mean(r[key] for r in study_report.design_ceilings(study_report.Rows(study), dataset,
                                                                             study_report.DEFAULT)[1])
    for dataset in ("mnist", "fashion-mnist"):
        assert ceiling(default, dataset, "fd_goal") < ceiling(previous, dataset, "fd_goal")
        assert ceiling(default, dataset, "recall_real") > ceiling(previous, dataset, "recall_real")
        reach = [{c for c in study["settings"]["classes"]
                  if study_report.ceiling_reach(study_report.Rows(study), dataset, c, "default")[2]}
                 for study in (default, previous)]
        assert reach[0] == reach[1]
    coat, shirt = 4, 6
    for c in (coat, shirt):  # "far below": under half of the classifier's rate on real ones
        worst, real, reached = study_report.ceiling_reach(study_report.Rows(default), "fashion-mnist", c, "default")
        assert not reached and worst < real / 2

    assert ("At 16 both graphs took the 4s in with the 9s on two of the three 9 draws from one label; at 32 the images "
            "`graph` takes as the goal are nearly pure on every class draw at every budget, so from one label it meets "
            "the target on more class draws, and its worst class draw is far above the latent of 16's from one label "
            "and above it from three") in text
    mixed = [r for r in class_draws(previous, "mnist", "graph", "1") if _found_purity(r) < 0.95]
    assert [r["goals"] for r in mixed] == [[9], [9]] and all(0.3 < r["class_histogram"][4] < 0.5 for r in mixed)
    for labels in ("1", "3", "10"):
        assert min(_found_purity(r) for r in class_draws(default, "mnist", "graph", labels)) >= 0.95, labels
    met = {name: sum(_targets_met(study, "mnist", "1").values()) for name, study in (("32", default), ("16", previous))}
    assert met["32"] > met["16"], met
    worst = {labels: [min(r["target_rate"] for r in class_draws(study, "mnist", "graph", labels))
                      for study in (default, previous)] for labels in ("1", "3")}
    assert worst["1"][0] > worst["1"][1] + 0.2 and worst["3"][0] > worst["3"][1], worst

    assert ("From ten labels one 7 draw falls just short of the coverage target at 32 that it just reached at 16") in text
    flipped = {study: [key for key, ok in _targets_met(load(path), "mnist", "10").items() if not ok]
               for study, path in (("32", STUDY), ("16", VARIANTS[PREVIOUS]))}
    assert flipped["16"] == [] and [c for c, _ in flipped["32"]] == [7]
    seven = [{r["draw"]: r["coverage"] for r in class_draws(study, "mnist", "graph", "10") if r["goals"] == [7]}
             for study in (default, previous)]
    draw = flipped["32"][0][1]
    assert 0.85 < seven[0][draw] < 0.9 <= seven[1][draw] < 0.95

    assert ("On Fashion-MNIST the two sizes meet the targets on about as many class draws at every budget, but not on "
            "the same ones: from ten labels the latent of 32 gains a sneaker draw and loses a sandal draw, from three it "
            "loses a pullover draw. Two of its three sandal draws from ten labels find only about a twentieth of the "
            "sandals, pure, so their samples are nearly all sandals but cover little of the class; the best sampler's "
            "samples from ten labels are on average further from the real goal images, because of the sandal's (most "
            "classes' are closer). And it fails where the latent of 16 did not fail as badly: the sneaker's third draw "
            "from three labels, whose samples go from mostly sneakers to mostly ankle boots, and from one label that "
            "draw finds only the labelled image itself") in text
    pullover, sandal, sneaker, boot = 2, 5, 7, 9
    for labels, gained, lost in (("10", [sneaker], [sandal]), ("3", [], [pullover]), ("1", [], [])):
        met = [_targets_met(study, "fashion-mnist", labels) for study in (default, previous)]
        assert abs(sum(met[0].values()) - sum(met[1].values())) <= 1, labels
        assert sorted(c for (c, d), ok in met[0].items() if ok and not met[1][(c, d)]) == gained, labels
        assert sorted(c for (c, d), ok in met[0].items() if met[1][(c, d)] and not ok) == lost, labels
    sandals = [r for r in class_draws(default, "fashion-mnist", "graph", "10") if r["goals"] == [sandal]]
    narrow = [r for r in sandals if 0.04 < r["found"]["5"]["recall"] < 0.065]  # "about a twentieth"
    assert len(sandals) == 3 and len(narrow) == 2
    assert all(r["found"]["5"]["purity"] > 0.95 and r["target_rate"] > 0.95 and r["coverage"] < 0.2 for r in narrow)
    distance = [study_report.best_sampler_per_class(study_report.Rows(study), "fashion-mnist", "10", "fd_goal")
                for study in (default, previous)]
    assert statistics.mean(distance[0].values()) > statistics.mean(distance[1].values())
    growth = {c: distance[0][c] - distance[1][c] for c in distance[0]}
    assert max(growth, key=growth.get) == sandal and sum(g < 0 for g in growth.values()) > len(growth) / 2, growth
    assert statistics.mean(g for c, g in growth.items() if c != sandal) < 0  # the sandal's alone makes the mean worse
    third = [next(r for r in class_draws(study, "fashion-mnist", "graph", "3") if r["goals"] == [sneaker]
                  and r["draw"] == 2) for study in (default, previous)]
    assert third[0]["class_histogram"][boot] > 0.5 and third[1]["class_histogram"][sneaker] > 0.5
    assert third[0]["target_rate"] < third[1]["target_rate"]
    alone = [next(r for r in class_draws(study, "fashion-mnist", "graph", "1") if r["goals"] == [sneaker]
                  and r["draw"] == 2) for study in (default, previous)]
    assert alone[0]["found"]["7"]["images"] == 1 and alone[1]["found"]["7"]["images"] > 1000

    assert "a few thousand parameters more" in text
    parameters = [study["design_costs"][d]["default"]["parameters"] for study in (default, previous) for d in ("mnist",)]
    assert 1000 < parameters[0] - parameters[1] < 10_000


# label draws whose discovery found the very same images, checked on the study's own VAE and graphs (latent 32,
# 2026-12-02): the MNIST 0 (5,263 images from draw 1 with 1 and 3 labels; 5,255 from draw 0 with 3 and draw 2 with
# 10), the MNIST 1 (5,800 from draw 0 with 1 label and draw 1 with 3; 5,802 from draw 2 with 1 and 3) and the
# Fashion-MNIST sneaker (7,609 from draws 0 and 1 with 1 label)
SAME_IMAGES_FROM_OTHER_DRAWS = {("mnist", "default", (0,)), ("mnist", "default", (1,)),
                                ("fashion-mnist", "default", (7,))}


def test_no_two_different_models_or_samplers_share_a_number_in_the_study():
    """The defect this guards against: numbers cached by id(model) were copied from one model to another."""
    seen = {}
    for row in load(STUDY)["rows"]:
        fingerprint = (row["fd_goal"], row["fd_test"], row["diversity"])
        key = (row["dataset"], row["design"], row["seed"], row["draw"], tuple(row["goals"]), row["method"],
               row["beta"], row["labels"])
        if row["method"] == units.REAL:  # the real goal images, the same under every design
            key = (row["dataset"], tuple(row["goals"]))
        if "found" in row:  # two budgets whose discovery found the same images draw the same samples
            key = key[:-1] + (json.dumps(row["found"], sort_keys=True),)
            if (row["dataset"], row["design"], tuple(row["goals"])) in SAME_IMAGES_FROM_OTHER_DRAWS:
                key = key[:3] + key[4:]
        assert seen.setdefault(fingerprint, key) == key, f"{key} has the numbers of {seen[fingerprint]}"


def test_the_default_sampler_is_the_best_one_measured():
    results = load(RESULTS["mnist"])
    best = report.sampler_rows(results, results["label_budgets"][0])[0]
    assert best["source"] == constants.SAMPLER


def test_every_image_the_readme_shows_is_committed():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", open(README).read())
    assert len(images) >= 40
    missing = [path for path in images if not os.path.exists(os.path.join(ROOT, path))]
    assert not missing, missing


# measurement-like tokens allowed outside the generated blocks: versions, settings and formulas, not results
ALLOWED = {"2.14.1", "0.29.1", "33.0", "1e-3"}


def test_hand_written_text_quotes_no_measurement():
    """Outside the generated blocks and code fences, no percentage, decimal number or speed-up factor: every
    measured number lives in a block that test_every_generated_block_is_what_its_json_gives checks."""
    text = open(README).read()
    text = re.sub(r"<!-- (\S+):start -->.*?<!-- \1:end -->", "", text, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    tokens = re.findall(r"\d+(?:\.\d+)?\s?%|\d+\.\d+(?:\.\d+)?|\d+(?:\.\d+)?x\b|\d+e-\d+", text)
    assert [t for t in tokens if t not in ALLOWED] == []


def test_the_readme_test_command_is_what_ci_runs():
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    command = re.search(r"^python -m pytest -q\b", open(README).read(), re.M)
    assert command and "python -m pytest -q" in ci and "pip install -q -r requirements.txt" in ci


def test_every_figure_and_file_the_readme_links_is_committed():
    text = open(README).read()
    links = re.findall(r"\]\(((?:figures|notebooks)/[^)#]+)\)", text)
    assert "figures/study_designs.png" in links and len(links) > 10
    missing = [link for link in links if not os.path.isfile(os.path.join(ROOT, link))]
    assert not missing, missing


def test_where_the_readme_says_discovery_fails_from_one_label():
    """The samplers section's list of one-label failures, from the study: on MNIST the one class draw that misses its
    target is a 7 whose found images are pure but a small share of the 7s (its samples' target rate reached, its
    coverage not), and every class draw's found images are nearly all (at least 0.95) the goal; at the latent of 16
    two of the three 9 draws missed too, their found images taking the 4s in (about four in ten of their samples
    4s); on Fashion-MNIST most class draws miss, the tops' found images are at most about half their class on
    average (under 0.6), the bag's are pure but partial, a trouser draw finds almost no trousers, the sandal's rate is
    under half, and a shirt draw is below what the base VAE draws from N(0, I)."""
    text = " ".join(open(README).read().split())
    study_json = load(STUDY)
    rows = study_report.Rows(study_json)
    method = units.sampler_method("graph")

    def one_label(dataset, c, study_rows=rows):
        return [row for _, row in sorted(study_rows.get(dataset, [c], method, "1").items())]

    def found(dataset, c, key):
        return [r["found"][str(c)][key] for r in one_label(dataset, c)]
    assert ("On MNIST the one class draw that misses its target from one label is a 7 whose label sits in a small "
            "cluster of 7s: it finds about a tenth of them, so its samples are 7s but cover little of the class") in text
    assert min(min(found("mnist", c, "purity")) for c in range(10)) >= 0.95
    missed = sorted(key for key, ok in _targets_met(study_json, "mnist", "1").items() if not ok)
    assert [c for c, _ in missed] == [7]
    seven = next(r for r in one_label("mnist", 7) if r["draw"] == missed[0][1])
    assert seven["found"]["7"]["purity"] > 0.95 and 0.05 < seven["found"]["7"]["recall"] < 0.15
    assert seven["target_rate"] > 0.95 and seven["coverage"] < 0.8
    assert ("At the latent of 16, the default before this one, two of the three 9 draws missed too: both graphs took "
            "the 4s in with the 9s, and what both found kept them, so that about four in ten of those draws' samples "
            "were 4s") in text
    previous = load(VARIANTS[PREVIOUS])
    previous_rows = study_report.Rows(previous)
    nines = one_label("mnist", 9, previous_rows)
    mixed_nines = [r for r in nines if r["found"]["9"]["purity"] < 0.95]
    assert len(nines) == 3 and len(mixed_nines) == 2
    assert all(0.3 < r["class_histogram"][4] < 0.5 for r in mixed_nines)
    missed = sorted(key for key, ok in _targets_met(previous, "mnist", "1").items() if not ok)
    assert [c for c, _ in missed] == [7, 9, 9] and {d for c, d in missed if c == 9} == {r["draw"] for r in mixed_nines}
    assert "On Fashion-MNIST from one label it misses on most class draws" in text
    fashion = _targets_met(study_json, "fashion-mnist", "1")
    assert sum(fashion.values()) < len(fashion) / 2
    assert ("(the tops: T-shirt, pullover, coat, shirt) it takes the neighbours too, so that on average at most about "
            "half of what it takes for each is of that class; the bag, like the MNIST 7, is found pure but only in "
            "part") in text
    for top in (0, 2, 4, 6):
        assert statistics.mean(found("fashion-mnist", top, "purity")) < 0.6, top
    bag = 8
    assert min(found("fashion-mnist", bag, "purity")) > 0.95 and max(found("fashion-mnist", bag, "recall")) < 0.6
    assert ("one trouser draw finds almost no trousers and one sneaker draw nothing but its labelled image, on average "
            "fewer than half of what it draws for the sandal are sandals, and it draws few shirts, on its worst draw "
            "fewer than a base VAE draws from N(0, I)") in text
    sneaker = 7
    assert sum(r["found"][str(sneaker)]["images"] == 1 for r in one_label("fashion-mnist", sneaker)) == 1
    sandal = [r["target_rate"] for r in one_label("fashion-mnist", 5)]
    shirt = [r["target_rate"] for r in one_label("fashion-mnist", 6)]
    assert len(sandal) == len(shirt) == 3
    assert min(found("fashion-mnist", 1, "purity")) < 0.1 and statistics.mean(sandal) < 0.5
    standard_normal = [r["target_rate"] for r in load(RESULTS["fashion-mnist"])["sampling"]
                       if r["model"] == "base" and r["labels"] is None]
    assert load(RESULTS["fashion-mnist"])["goals"] == [6] and len(standard_normal) == 1
    assert min(shirt) < standard_normal[0]


def test_the_readme_says_the_exact_neighbours_moved_the_latent_16_study_s_worst_mnist_draw():
    """The discovery paragraph: given the exact neighbours, the latent-16 study's worst MNIST draws from 1 label are
    about half pure again, as the one-graph code's worst was (constants.py's 0.561): the two mixed 9 draws, and no
    other; at the default latent of 32 every draw's found images are nearly pure (the study)."""
    text = " ".join(open(README).read().split())
    assert ("on the latent-16 study's MNIST VAE the worst draw from 1 label is again about half pure (the two 9 draws "
            "above, where both graphs took the 4s in; `constants.py`)") in text
    rows = class_draws(load(VARIANTS[PREVIOUS]), "mnist", "graph", "1")
    assert len(rows) == 30
    mixed = [r for r in rows if _found_purity(r) < 0.95]
    assert [r["goals"] for r in mixed] == [[9], [9]] and all(0.4 < r["found"]["9"]["purity"] < 0.65 for r in mixed)
    assert ("At the default latent of 32 it raises both: over the same four seeds on the study's VAE of that size, "
            "every class draw's found images are nearly pure on every seed") in text
    rows = class_draws(load(STUDY), "mnist", "graph", "1")
    assert len(rows) == 30 and min(map(_found_purity, rows)) >= 0.95


def test_pseudo_label_meets_about_as_many_targets_as_graph_and_its_worst_draw_is_within_a_point_of_graph_s():
    """Why `graph` stays the default: at every budget of the study, on both datasets, `pseudo-label` meets the targets
    on about as many class draws as `graph` (within two), and its worst class draw's target rate (the lowest) is
    within a point of `graph`'s."""
    text = " ".join(open(README).read().split())
    assert ("`pseudo-label` meets the targets on about as many class draws as `graph` (the every-sampler lines above), "
            "its worst class draw is within a point of `graph`'s") in text
    study_json = load(STUDY)
    for dataset in study_json["settings"]["datasets"]:
        for labels in map(str, study_json["settings"]["label_curve"]):
            met, worst = {}, {}
            for name in ("graph", "pseudo-label"):
                met[name] = sum(_targets_met(study_json, dataset, labels, name).values())
                draws = class_draws(study_json, dataset, name, labels)
                assert len(draws) == 30
                worst[name] = min(r["target_rate"] for r in draws)
            assert abs(met["graph"] - met["pseudo-label"]) <= 2 and abs(worst["graph"] - worst["pseudo-label"]) <= 0.01, (
                dataset, labels, met, worst)


def test_where_the_second_graph_cannot_help_is_a_sandal_at_16_and_a_sneaker_at_32():
    """The discovery paragraph: both graphs agreed on a mix, about half sandals, on the latent-16 study's first sandal
    draw from 1 label; at 32 the sneaker's third draw from 3 labels took mostly ankle boots, and drew them."""
    text = " ".join(open(README).read().split())
    assert ("at the latent of 16, the study's first sandal draw from 1 label, which the means' graph alone found nearly "
            "pure before the second graph, became about half sandals; at 32, the sneaker's third draw from 3 labels, "
            "where the means' graph took mostly ankle boots and the embedding's some, so that what both found, and "
            "the samples, are mostly boots") in text
    sandal = next(r for r in class_draws(load(VARIANTS[PREVIOUS]), "fashion-mnist", "graph", "1") if r["goals"] == [5]
                  and r["draw"] == 0)
    assert 0.4 < sandal["found"]["5"]["purity"] < 0.6
    sneaker, boot = 7, 9
    third = next(r for r in class_draws(load(STUDY), "fashion-mnist", "graph", "3") if r["goals"] == [sneaker]
                 and r["draw"] == 2)
    assert third["found"]["7"]["purity"] < 0.3 and third["class_histogram"][boot] > 0.5

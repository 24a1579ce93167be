"""The README shows today's committed results: its tables match the JSON, its images exist."""
import json
import os
import re

import evaluate
from conftest import ROOT


def readme_block(name):
    text = open(os.path.join(ROOT, "README.md")).read()
    return text.split(f"<!-- {name}:start -->\n", 1)[1].split(f"<!-- {name}:end -->", 1)[0]


def test_readme_results_table_matches_results_json():
    results = json.load(open(os.path.join(ROOT, "figures", "results.json")))
    table = evaluate.results_markdown(results)
    assert readme_block("results") == table
    assert open(os.path.join(ROOT, "figures", "results.md")).read() == table
    assert not results["quick"]  # the committed numbers come from a full run


def test_readme_bench_table_matches_bench_output():
    assert readme_block("bench") == open(os.path.join(ROOT, "figures", "bench.md")).read()


def test_every_image_the_readme_shows_is_committed():
    text = open(os.path.join(ROOT, "README.md")).read()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) >= 25
    missing = [path for path in images if not os.path.exists(os.path.join(ROOT, path))]
    assert not missing, missing


def test_readme_study_table_matches_study_json():
    import study
    report = json.load(open(os.path.join(ROOT, "figures", "study.json")))
    table = study.study_markdown(report)
    assert readme_block("study") == table
    assert open(os.path.join(ROOT, "figures", "study.md")).read() == table
    assert report["settings"] == study.study_settings(quick=False)  # a full study, with today's settings
    assert len(report["seeds"]) >= 3

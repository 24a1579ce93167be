"""The benchmark's device section, as far as a machine without a GPU can check it: the utilisation window, the gap
to the committed results, its table, and its refusal without a device."""
import bench
import report
from conftest import run_main_in_process


def test_utilisation_is_read_inside_the_timed_epoch_only():
    samples = [(0.0, 0.0), (1.0, 0.9), (1.5, 0.7), (2.0, 0.8), (3.0, 0.0)]  # idle start-up and tail outside
    window = bench.utilisation_between(samples, 1.0, 2.0)
    assert window == {"median": 0.8, "max": 0.9, "samples": 3}
    assert bench.utilisation_between(samples, 5.0, 6.0) is None


def test_the_gap_to_the_committed_run_compares_the_same_rows():
    committed = {"sampling": [{"model": "base", "source": "graph", "labels": "10", "target_rate": 0.99},
                              {"model": "base", "source": "ratio", "labels": "10", "target_rate": 0.50}]}
    measured = {"sampling": [{"model": "base", "source": "graph", "labels": "10", "target_rate": 0.97},
                             {"model": "base", "source": "ratio", "labels": "10", "target_rate": 0.51},
                             {"model": "base", "source": "new", "labels": "10", "target_rate": 0.0}]}
    gap = bench.results_gap(measured, committed)
    assert gap["rows"] == 2 and abs(gap["max_abs_target_rate_diff"] - 0.02) < 1e-12
    assert gap["worst_row"] == ["base", "graph", "10"]


def test_the_gpu_table_shows_each_figure_against_its_target():
    section = {"device": "NVIDIA H200", "torch": "2.11", "date": "2026-12-01", "train_images_per_second": 123456.0,
               "step_ms": 0.5, "utilisation": 0.42, "peak_gpu_mib": 900.0, "ttq_target": 33.0,
               "ttq_train_seconds": 3.2, "ttq_startup_seconds": 13.0, "ttq_process_seconds": 16.2,
               "alltests_seconds": 95.0, "against_committed_cpu_run": {"rows": 15, "max_abs_target_rate_diff": 0.013},
               "study_units": 43, "study_workers": 8, "study_seconds": 70.0, "study_device": "cpu"}
    table = "\n".join(report.gpu_markdown(section))
    assert "| 123,456 | ≥ 250,000 |" in table and "| 42% | ≥ 70% |" in table and "| 3.2 | ≤ 2 |" in table
    assert "| 95 | ≤ 30 |" in table and "1.3 points" in table and "**On NVIDIA H200**" in table


def test_the_gpu_section_needs_a_device():
    result = run_main_in_process("bench", "--only", "gpu")
    code, stderr = result.returncode, result.stderr
    assert code == 2 and stderr.startswith("error: ") and "--device" in stderr and len(stderr.splitlines()) == 1

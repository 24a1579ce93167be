"""Shared fixtures. The datasets come from the folder named by $BIASED_VAE_DATA_DIR (CI points it at the offline
copy), else from constants.DATA_DIR, downloading when online."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import constants  # noqa: E402
import datasets  # noqa: E402


@pytest.fixture(scope="session")
def data_dir():
    return os.path.abspath(datasets.resolve_data_dir())


@pytest.fixture(scope="session")
def small_data(data_dir):
    return datasets.load("mnist", data_dir, train_images=3000)


def run_script(script, *args, env=None, timeout=600):
    """Run one of the project's scripts as a user would, from the repo root."""
    full_env = dict(os.environ, PYTHONHASHSEED="0", **(env or {}))
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_main_in_process(module_name, *args, env=None):
    """A script's main() as its command line runs it (cli.run_main), in this process, with `env` added to the
    environment: a subprocess.CompletedProcess as run_script gives. For the many cases that end in a one-line error
    or that only need the script's logic, which would otherwise pay an interpreter and torch start each (about
    7 s). A Python warning, which pytest would otherwise swallow, counts as a line of stderr, as it would in the
    script."""
    import contextlib
    import importlib
    import io
    import warnings

    import cli
    main = importlib.import_module(module_name).main
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(stdout), \
            contextlib.redirect_stderr(stderr), warnings.catch_warnings(record=True) as caught:
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        warnings.simplefilter("always")
        try:
            cli.run_main(lambda: main(list(args)))
            code = 0
        except SystemExit as stop:
            code = stop.code
    warned = "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
    return subprocess.CompletedProcess([module_name, *args], code, stdout.getvalue(), warned + stderr.getvalue())


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, data_dir):
    """One `alltests.py --quick` run shared by the tests that inspect its outputs."""
    out = tmp_path_factory.mktemp("quick")
    result = run_script("alltests.py", "--quick", "--out-dir", str(out), "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def finished_evaluations(out):
    """How many evaluation units have written their result under `out` (not the atomic writer's temporary files)."""
    folder = out / "units" / "evaluation"
    return len([f for f in os.listdir(folder) if re.fullmatch(r"[0-9a-f]{20}\.json", f)]) if folder.exists() else 0


@pytest.fixture(scope="session")
def quick_study(tmp_path_factory, data_dir):
    """One `study.py --quick` run, killed (driver and local cluster) once four evaluation units have finished, then
    resumed to the end: (its output folder, its study.json, the evaluation results the kill left). The test of a
    separately started cluster runs the same study uninterrupted and compares its numbers with these."""
    out = tmp_path_factory.mktemp("study")
    process = subprocess.Popen([sys.executable, "study.py", "--quick", "--out-dir", str(out), "--data-dir", data_dir],
                               cwd=ROOT, env=dict(os.environ, PYTHONHASHSEED="0"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    while process.poll() is None and finished_evaluations(out) < 4:  # no clock: a slow machine only waits longer
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    left = finished_evaluations(out)
    assert not (out / "figures" / "study.json").exists(), "the study ended before it could be killed"
    result = run_script("study.py", "--quick", "--out-dir", str(out), "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, json.load(open(out / "figures" / "study.json")), left


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(constants.SEED)


@pytest.fixture(autouse=True)
def _threads():
    """A study unit run in-process sets one thread, as on a worker: later tests get the machine back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)

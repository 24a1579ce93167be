"""Shared fixtures. The datasets come from the folder named by $BIASED_VAE_DATA_DIR (CI points it at the offline
copy), else from constants.DATA_DIR, downloading when online."""
import json
import os
import subprocess
import sys

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


def run_main_in_process(module_name, *args):
    """A script's main() as its command line runs it (cli.run_main), in this process: (exit code, stderr). For the
    many one-line-error cases, which would otherwise pay an interpreter and torch start each. A Python warning,
    which pytest would otherwise swallow, counts as a line of stderr, as it would in the script."""
    import contextlib
    import importlib
    import io
    import warnings

    import cli
    main = importlib.import_module(module_name).main
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cli.run_main(lambda: main(list(args)))
            code = 0
        except SystemExit as stop:
            code = stop.code
    return code, "".join(f"{w.category.__name__}: {w.message}\n" for w in caught) + stderr.getvalue()


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, data_dir):
    """One `alltests.py --quick` run shared by the tests that inspect its outputs."""
    out = tmp_path_factory.mktemp("quick")
    result = run_script("alltests.py", "--quick", "--out-dir", str(out), "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.fixture(scope="session")
def quick_study(tmp_path_factory, data_dir):
    """One uninterrupted `study.py --quick` run: (its output folder, its study.json)."""
    out = tmp_path_factory.mktemp("study")
    result = run_script("study.py", "--quick", "--out-dir", str(out), "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, json.load(open(out / "figures" / "study.json"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(constants.SEED)


@pytest.fixture(autouse=True)
def _threads():
    """A study unit run in-process sets one thread, as on a worker: later tests get the machine back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)

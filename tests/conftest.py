"""Shared fixtures. The datasets come from the folder named by $BIASED_VAE_DATA_DIR (CI points it at the offline
copy), else from constants.DATA_DIR, downloading when online."""
import contextlib
import importlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import warnings

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
    import cli
    main = importlib.import_module(module_name).main
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(stdout), \
            contextlib.redirect_stderr(stderr), warnings.catch_warnings(record=True) as caught:
        patch.chdir(ROOT)  # where run_script runs them: relative defaults (data/, runs/) mean the same folders
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        # urlopen keeps the opener (and the proxies) it built on its first call in a process: a fresh one reads `env`
        patch.setattr(urllib.request, "_opener", None)
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
    """One `alltests.py --quick` run shared by the tests that inspect its outputs, on the CPU (a test recomputes some
    of its numbers in process, on the CPU, and compares them to the bit)."""
    out = tmp_path_factory.mktemp("quick")
    result = run_script("alltests.py", "--quick", "--out-dir", str(out), "--data-dir", data_dir, "--device", "cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


FINISHED = {"evaluation": r"evaluation/[0-9a-f]{20}\.json", "vae": r"vae/[0-9a-f]{20}\.pt",
            "classifier": r"classifier/[0-9a-f]{20}/classifier\.pt", "unlabelled": r"unlabelled/[0-9a-f]{20}/unlabelled\.pt"}


def finished_units(out, kinds=tuple(FINISHED)):
    """How many units of these kinds have written their result under out/units/ (atomically: the writer's temporary
    files do not count)."""
    folder = out / "units"
    if not folder.exists():
        return 0
    found = [path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()]
    return sum(any(re.fullmatch(FINISHED[kind], name) for kind in kinds) for name in found)


@pytest.fixture(scope="session")
def quick_study(tmp_path_factory, data_dir):
    """One `study.py --quick` run on 2 workers, killed (driver and local cluster) once four evaluation units have
    finished, then resumed to the end: (its output folder, its study.json, how many units had finished when it was
    killed). The test of a separately started cluster runs the same study uninterrupted and compares its numbers
    with these."""
    out = tmp_path_factory.mktemp("study")
    command = ["study.py", "--quick", "--workers", "2", "--out-dir", str(out), "--data-dir", data_dir]
    with open(out / "killed-run.log", "w") as log:
        process = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=dict(os.environ, PYTHONHASHSEED="0"),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 600  # far beyond a slow machine's quick study: only a hung run reaches it
        while process.poll() is None and finished_units(out, ["evaluation"]) < 4 and time.time() < deadline:
            time.sleep(0.2)
        ended = process.poll()
        with contextlib.suppress(ProcessLookupError):  # its workers too, whether or not the driver is still there
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finished = finished_units(out)
    why = open(out / "killed-run.log").read()[-2000:]
    assert ended is None, f"the study ended (exit code {ended}) before it could be killed: {why}"
    assert finished_units(out, ["evaluation"]) >= 4, f"no four evaluation units finished in 600 s: {why}"
    result = run_script(*command)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, json.load(open(out / "figures" / "study.json")), finished


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(constants.SEED)


@pytest.fixture(autouse=True)
def _threads():
    """A study unit run in-process sets one thread, as on a worker: later tests get the machine back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)

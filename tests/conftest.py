"""Shared fixtures. MNIST comes from the folder named by $BIASED_VAE_DATA_DIR (CI points it at the
offline copy), else from constants.DATA_DIR, downloading when online."""
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import constants  # noqa: E402
import mnist  # noqa: E402


@pytest.fixture(scope="session")
def data_dir():
    return os.path.abspath(mnist.resolve_data_dir())


@pytest.fixture(scope="session")
def small_data(data_dir):
    return mnist.load_mnist(data_dir, train_images=3000)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, data_dir):
    """One `alltests.py --quick` run shared by the tests that inspect its outputs."""
    out = tmp_path_factory.mktemp("quick")
    result = run_script("alltests.py", "--quick", "--out-dir", str(out), "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def run_script(script, *args, env=None):
    """Run one of the project's scripts as a user would, from the repo root."""
    full_env = dict(os.environ, PYTHONHASHSEED="0", **(env or {}))
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(constants.SEED)

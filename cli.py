"""What every script's command line shares: one-line errors with exit code 2, and the machine flags."""
import argparse
import sys

import constants
from cache import StaleCodeError
from config import ConfigError
from datasets import DataError
from errors import CheckpointError, EngineError, MeasurementError, SamplerError, TrainingError
from models import DeviceError


USER_ERRORS = (ConfigError, CheckpointError, TrainingError, SamplerError, MeasurementError, EngineError, DeviceError,
               DataError, StaleCodeError)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors on one line ("error: ... (see --help)"), exit code 2, like every other user error."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def add_machine_arguments(parser):
    """--device and --data-dir: where to compute and where the datasets live (every script has them)."""
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: CUDA, then MPS, then CPU)")
    parser.add_argument("--data-dir", default=None, help=f"data root holding MNIST/raw/ and FashionMNIST/raw/ "
                        f"(default: ${constants.DATA_DIR_ENV}, else {constants.DATA_DIR!r})")
    return parser


def run_main(main):
    """Run a script's main(); a user error prints one line and exits 2, Ctrl-C exits 130."""
    try:
        main()
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:  # an unwritable --out, a full disk: what failed and where, not a traceback
        print(f"error: {error.strerror or error}" + (f": {error.filename}" if error.filename else ""), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished checkpoints, figures and results are untouched", file=sys.stderr)
        sys.exit(130)

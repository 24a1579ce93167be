"""The project's error types that more than one layer raises or catches; each is one readable line for the user.

The bottom of the import graph: library modules raise these, and cli.py turns them (and ConfigError, DataError,
DeviceError, StaleCodeError, which live beside the code that raises them) into `error: ...` and exit code 2.
"""


class CheckpointError(RuntimeError):
    """A checkpoint or cached artefact that cannot be loaded safely, or was made for another request."""


class TrainingError(RuntimeError):
    """Training diverged (NaN or inf loss)."""


class SamplerError(ValueError):
    """A sampler that does not exist, or cannot be fitted from what it was given."""


class EngineError(RuntimeError):
    """The study's Dask cluster could not be reached or started."""


class MeasurementError(ValueError):
    """A metric that cannot be computed from these samples (a Frechet distance whose matrix square root is complex)."""

"""One data spec for every stage: calibration (quantize), evaluation (bench, check), training (prune).

    >>> from edgeml.calibration import DataSpec, load_dataset
    >>> ds = load_dataset(DataSpec.parse("builtin:digits?split=test"), inputs=inspection.inputs)
    >>> for sample in ds: sample.feeds, sample.label

A SPEC is a path (.npz, .npy, .csv, an image folder, a .toml data-spec file) or ``builtin:digits``,
with options inline (``images/?norm=imagenet&samples=200``), in the TOML file, or as keyword overrides.
"""

from edgeml.calibration.dataset import Dataset, Sample, load_dataset
from edgeml.calibration.spec import DataSpec

__all__ = ["DataSpec", "Dataset", "Sample", "load_dataset"]

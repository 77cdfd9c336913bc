"""Datasets of simulated echoes: the sampling protocol, the Parquet store and the factory."""
from pyecho.data.sampling import PRESETS, ConfigError, DatasetConfig, draw_sample, draw_samples
from pyecho.data.store import SCHEMA_VERSION, DatasetError, EchoDataset, load_dataset, read_metadata, scan_dataset

__all__ = [
    "PRESETS",
    "ConfigError",
    "DatasetConfig",
    "draw_sample",
    "draw_samples",
    "SCHEMA_VERSION",
    "DatasetError",
    "EchoDataset",
    "load_dataset",
    "read_metadata",
    "scan_dataset",
]

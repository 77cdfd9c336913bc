"""Saved models' files: the JSON header every saved CNN / MiniRocket model carries, checked
before anything is read, so a model written by another pyecho is refused with one line."""
from __future__ import annotations

import json
from pathlib import Path

from pyecho.errors import InputFileError
from pyecho.learn.models.targets import KERNEL_CLASSES

#: version of the JSON header written beside every saved CNN / MiniRocket model (2: the linear
#: heads saved as arrays, no longer as scikit-learn estimators)
MODEL_FORMAT_VERSION = 2


class ModelFileError(InputFileError):
    """A saved model cannot be used by this pyecho; the message names the file and why."""


def model_header(kind: str) -> dict:
    """The JSON header of a saved model of ``kind``: format, versions, class and target order."""
    import pyecho  # deferred: pyecho/__init__ imports the engines, not this module

    return {"format": kind, "format_version": MODEL_FORMAT_VERSION, "pyecho_version": pyecho.__version__,
            "classes": list(KERNEL_CLASSES)}


def read_json(path: Path) -> dict:
    """The JSON of a saved model's file; ModelFileError (one line naming ``path``) when unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: not readable JSON ({exc})") from None


def check_model_header(path, config: dict, kind: str) -> None:
    """Refuse (ModelFileError, one line naming ``path``) a config not written by this pyecho for ``kind``."""
    expected = model_header(kind)
    for key, want in expected.items():
        got = config.get(key) if isinstance(config, dict) else None
        if got != want:
            raise ModelFileError(f"{path}: {key} is {got!r}, this pyecho needs {want!r}; "
                                 "retrain the model with this version")


def read_model_config(directory, config_file: str, data_file: str, kind: str,
                      writer: str) -> tuple[Path, Path, dict]:
    """The paths of a saved model's config and data files and its checked config.

    ModelFileError (one line naming the file) for a missing file, unreadable JSON, or a config
    not written by this pyecho for ``kind``; ``writer`` names what writes such a directory.
    """
    d = Path(directory)
    config_path, data_path = d / config_file, d / data_file
    for path in (config_path, data_path):
        if not path.is_file():
            raise ModelFileError(f"{path}: missing; point at a directory written by {writer}")
    config = read_json(config_path)
    check_model_header(config_path, config, kind)
    return config_path, data_path, config

"""Saved models' headers: a config not written by this pyecho is refused with one line naming the file."""
from __future__ import annotations

import pytest

from pyecho.learn.models.model_files import ModelFileError, check_model_header, model_header


def test_model_header_check_names_the_file_and_the_mismatch():
    cfg = model_header("pyecho.test")
    check_model_header("m.json", cfg, "pyecho.test")
    with pytest.raises(ModelFileError, match=r"m\.json: pyecho_version is '0\.0\.0'"):
        check_model_header("m.json", {**cfg, "pyecho_version": "0.0.0"}, "pyecho.test")
    with pytest.raises(ModelFileError, match="format"):
        check_model_header("m.json", cfg, "pyecho.other")

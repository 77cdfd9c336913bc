"""The documents' runnable examples run as written (the output they show is what they print)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

#: (document, the first line of a ```python block that is run from the repository root)
RUNNABLE = [("docs/spectrometer.md", "# PYTHONPATH=. python example.py   (from the repository root)")]


def python_block(document: str, first_line: str) -> str:
    text = (REPO / document).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    found = [b for b in blocks if b.startswith(first_line)]
    assert len(found) == 1, f"{document}: one ```python block must start with {first_line!r}"
    return found[0]


def shown_output(document: str, after: str) -> list[str]:
    """The lines of the first ```text block after the block that starts with ``after``."""
    text = (REPO / document).read_text()
    rest = text[text.index(after):]
    return re.search(r"```text\n(.*?)```", rest, flags=re.S).group(1).strip().splitlines()


@pytest.mark.parametrize(("document", "first_line"), RUNNABLE)
def test_runnable_examples_print_what_the_document_shows(document, first_line, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(python_block(document, first_line))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == shown_output(document, first_line)

"""Option values shared by several commands."""
from __future__ import annotations

from pathlib import Path

from pyecho.physics.sequence import PulseSequence, parse_sequence


def sequence_option(value: str) -> str | PulseSequence:
    """--sequence: a preset (hahn, cpmg:N, cp:N), a pulse list's JSON text, or a TOML file of pulses."""
    if value.strip().lower().endswith(".toml"):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"--sequence: {path} does not exist")
        return PulseSequence.from_toml(path)
    return parse_sequence(value)

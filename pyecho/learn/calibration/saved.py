"""The calibration of a trained model set on disk: every target's intervals and the kernel's
probability model, one JSON file (no pickle)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pyecho.errors import InputFileError
from pyecho.atomic import atomic_path
from pyecho.learn.calibration.conformal import FORMAT_VERSION, IntervalCalibration
from pyecho.learn.calibration.probability import KernelProbability


# --------------------------------------------------------------------------- saving
@dataclass(frozen=True)
class Calibration:
    """Every calibration of a trained model set (the intervals and the kernel's probability
    model), saved as one JSON file."""

    intervals: tuple[IntervalCalibration, ...]
    kernel: KernelProbability

    def interval(self, target: str) -> IntervalCalibration:
        for c in self.intervals:
            if c.target == target:
                return c
        raise KeyError(f"no interval calibration for {target!r}; have {[c.target for c in self.intervals]}")

    @property
    def level(self) -> float:
        return self.intervals[0].level

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "intervals": [asdict(c) for c in self.intervals],
                "kernel": self.kernel.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        if d.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {d.get('format_version')!r}; this pyecho reads {FORMAT_VERSION}")
        intervals = tuple(IntervalCalibration(**{**c, "band_edges": tuple(c["band_edges"]), "q": tuple(c["q"]),
                                                 "n_calibration": tuple(c["n_calibration"])}) for c in d["intervals"])
        return cls(intervals=intervals, kernel=KernelProbability.from_dict(d["kernel"]))

    def save(self, path: str | Path) -> Path:
        """Write JSON to ``path`` atomically (floats round-trip exactly; every q is finite: a band
        with too few calibration rows was merged)."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        """Read a file written by :meth:`save`; InputFileError names the file and what is wrong."""
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise InputFileError(f"{path}: missing (a calibration file of pyecho learn)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise InputFileError(f"{path}: not a pyecho calibration file ({exc})") from None

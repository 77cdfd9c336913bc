"""The simulator as a fit sees it: a protocol's records at many parameter points, binned.

Every parameter point is simulated on the same D detuning draws (common random numbers: a
difference between two points is the parameters', not the draws'), and all points x draws of
one simulated measurement go to the engine as one batch (pyecho.simulate_batch makes one
engine call per record shape; a protocol's shorter train is sliced from a longer one).

The fit compares *bins*: the mean of ``bin_size`` consecutive samples of a measurement, kept
where every sample is recorded (not within the dead time after a pulse, not missing in the
record). Averaging white noise over a bin keeps its information about a record that barely
changes within the bin (1.28 µs at 8 samples of 0.16 µs: the echoes last tens of µs), and
makes the error model's covariance small enough to hold dense.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyecho import simulate_batch
from pyecho.errors import ParameterError
from pyecho.fit.space import CENTER, FamilySpace
from pyecho.physics.detuning import sample_detuning_mhz
from pyecho.physics.protocol import RecordGrid

#: samples per bin: 2.56 µs at the datasets' 0.16 µs step; what the records tell barely
#: changes from 1.28 to 10 µs bins (docs/fit.md), and the covariance is 4x smaller than at 1.28
DEFAULT_BIN_SIZE = 16
#: the seed stream of the fit's detuning draws (never a dataset's: those use SeedSequence([seed, i]))
DRAW_STREAM = 0x5EED_F17
#: independent sets of draws: the model's (its mean and the error model's), and the check's
#: (the scatter an estimate's covariance is measured against: never the model's own draws)
MODEL_DRAWS, CHECK_DRAWS = 0, 1
#: the precision of the model's means and derivatives (finite differences of float32 records
#: lose the weak parameters, T2 and Γ₁, to rounding: docs/fit.md), and of the scatter's draws
MEAN_DTYPE, SCATTER_DTYPE = "float64", "float32"


@dataclass(frozen=True)
class DetuningDraws:
    """D detuning fields, zero-centred (MHz), shape (D, n, n): a point's carrier offset shifts them."""

    spreads_mhz: np.ndarray
    seed: int

    def __len__(self) -> int:
        return self.spreads_mhz.shape[0]

    @property
    def lattice(self) -> int:
        return self.spreads_mhz.shape[1]

    @classmethod
    def draw(cls, n_draws: int, lattice: int, linewidth_khz: float, seed: int = 0, purpose: int = MODEL_DRAWS
             ) -> "DetuningDraws":
        """``n_draws`` truncated-Lorentzian fields (pyecho.physics.detuning) from ``seed``; the
        first k of n draws are the k draws (``first``); ``purpose`` selects an independent set."""
        if n_draws < 2:
            raise ParameterError(f"draws: got {n_draws}; need at least 2 (their spread is part of the error model)")
        streams = np.random.SeedSequence([int(seed), DRAW_STREAM, int(purpose)]).spawn(n_draws)
        return cls(np.stack([sample_detuning_mhz(np.random.default_rng(s), lattice, linewidth_khz) for s in streams]),
                   int(seed))

    def first(self, n: int) -> "DetuningDraws":
        return DetuningDraws(self.spreads_mhz[:n], self.seed)

    def split(self, n: int) -> tuple["DetuningDraws", "DetuningDraws"]:
        """The first ``n`` draws and the rest."""
        return DetuningDraws(self.spreads_mhz[:n], self.seed), DetuningDraws(self.spreads_mhz[n:], self.seed)


@dataclass(frozen=True)
class Binning:
    """Which samples the fit compares: for each measurement k, the bins (``bin_size`` consecutive
    samples from sample 0 on) whose samples are all valid, ``starts[k]`` their first samples.

    ``measurement`` (Nb,): the measurement of every bin, in the order :meth:`apply` returns them
    (measurement 0's bins first)."""

    starts: tuple[np.ndarray, ...]
    bin_size: int

    @classmethod
    def of(cls, grid: RecordGrid, valid: tuple[np.ndarray, ...], bin_size: int = DEFAULT_BIN_SIZE) -> "Binning":
        """Bins of ``grid``'s measurements whose samples are all ``valid`` (bool (T_k,) each)."""
        if bin_size < 1:
            raise ParameterError(f"bin_size: got {bin_size}; must be >= 1 (samples per bin)")
        starts = []
        for k, ok in enumerate(valid):
            n_bins = grid.lengths[k] // bin_size
            full = np.asarray(ok[:n_bins * bin_size], dtype=bool).reshape(n_bins, bin_size).all(axis=1)
            starts.append(np.flatnonzero(full) * bin_size)
        if sum(len(s) for s in starts) == 0:
            raise ParameterError("the records hold no complete bin of valid samples")
        return cls(tuple(starts), int(bin_size))

    @classmethod
    def outside_dead_time(cls, grid: RecordGrid, dead_time_us: float, bin_size: int = DEFAULT_BIN_SIZE,
                          records: tuple[np.ndarray, ...] | None = None) -> "Binning":
        """The bins a fit or a bound compares: every sample outside the dead time after each pulse
        and, given ``records``, recorded (finite) there."""
        valid = []
        for k in range(len(grid.protocol)):
            ok = ~grid.dead_mask(k, dead_time_us)
            valid.append(ok if records is None else ok & np.isfinite(records[k]))
        return cls.of(grid, tuple(valid), bin_size)

    @property
    def measurement(self) -> np.ndarray:
        return np.concatenate([np.full(len(s), k) for k, s in enumerate(self.starts)])

    @property
    def n_bins(self) -> int:
        return int(sum(len(s) for s in self.starts))

    def times_us(self, grid: RecordGrid) -> tuple[np.ndarray, ...]:
        """The middle of every bin (µs after its measurement's excitation), per measurement."""
        return tuple(grid.dt_us * (s + 0.5 * (self.bin_size - 1) + 1) for s in self.starts)

    def apply(self, records: tuple[np.ndarray, ...]) -> np.ndarray:
        """Bin means of records (..., T_k) per measurement, concatenated: (..., Nb)."""
        out = []
        for R, s in zip(records, self.starts):
            idx = s[:, None] + np.arange(self.bin_size)
            out.append(np.asarray(R)[..., idx].mean(axis=-1))
        return np.concatenate(out, axis=-1)


@dataclass(frozen=True)
class Engine:
    """Where and how the fit's simulations run (pyecho.simulate_batch's options)."""

    backend: str = "torch"
    device: str = "cpu"
    dtype: str = MEAN_DTYPE

    def at(self, dtype: str) -> "Engine":
        return Engine(self.backend, self.device, dtype)


def simulate_points(space: FamilySpace, grid: RecordGrid, X, draws: DetuningDraws, *, site_groups: int = 1,
                    engine: Engine = Engine()) -> tuple[np.ndarray, ...]:
    """The records of every point of ``X`` (P, n_params) on every draw, per measurement of
    ``grid.protocol``: complex arrays (P, D, T_k), or (P, D, g², T_k) with ``site_groups`` g > 1.

    One :func:`pyecho.simulate_batch` call per simulated measurement holds all P x D runs."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    D = len(draws)
    if draws.lattice != space.config.lattice:
        raise ParameterError(f"draws: made for lattice {draws.lattice}, the space's is {space.config.lattice}")
    centers_mhz = (X[:, space.index(CENTER)] if CENTER in space.names else np.zeros(len(X))) / 1000.0
    detunings = [draws.spreads_mhz[d] + centers_mhz[i] for i in range(len(X)) for d in range(D)]
    protocol = grid.protocol
    simulated = {}
    for source in protocol.sources(grid.dt_us):
        params = [space.echo_params(x, protocol[source]) for x in X for _ in range(D)]
        M = simulate_batch(params, detunings_mhz=detunings, backend=engine.backend, device=engine.device,
                           dtype=engine.dtype, site_groups=site_groups)
        simulated[source] = M.reshape(len(X), D, *M.shape[1:])
    return tuple(simulated[r.source][..., :r.n_samples] for r in protocol.simulated(grid.dt_us))

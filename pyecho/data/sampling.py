"""The dataset protocol (SPEC §4): a validated config, its presets, and per-sample draws.

Sample ``i`` (0-based, global over the kernel blocks in ``DatasetConfig.kernels`` order)
derives all of its randomness from ``np.random.SeedSequence([config.seed, i])`` alone:

- its parameters by rejection: alpha_xy ~ U(alpha_xy_range), alpha_z ~ U(alpha_z_range),
  kernel_param ~ U(range of its kernel), accepted iff W = 2 alpha_xy + alpha_z lies in
  ``w_range``, otherwise redrawn from the same per-sample stream;
- its detuning seed, a uint64 that ``simulate(params, seed=...)`` turns into the detunings.

So any split of the indices into batches, parts, shards or machines draws the same samples.
Couplings are in rad/us, times in us, the linewidth in kHz (SPEC §2).
"""
from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from pyecho.physics.kernels import KERNELS, kernel_stats
from pyecho.physics.params import EchoParams, ParameterError

#: config field holding the kernel_param range of each parametrised kernel
KERNEL_PARAM_FIELDS = {"gaussian": "xi_range", "power": "p_range", "rkky": "gamma_range"}
#: points at which a kernel_param range is checked for a usable kappa (no zero crossing)
_KAPPA_CHECK_POINTS = 33


class ConfigError(ParameterError):
    """An invalid dataset option; ``option`` is the config field (CLI: --option-with-dashes)."""

    def __init__(self, option: str, detail: str):
        super().__init__(f"{option}: {detail}")
        self.option = option
        self.detail = detail


def _count(option: str, value, minimum: int) -> int:
    if not isinstance(value, bool):
        try:
            value = operator.index(value)
        except TypeError:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(option, f"got {value!r}; must be an integer >= {minimum}")
    return value


def _range(option: str, value, positive: bool = False) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(option, f"got {value!r}; must be two numbers LO,HI") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ConfigError(option, f"got ({lo}, {hi}); both ends must be finite")
    if lo > hi:
        raise ConfigError(option, f"got ({lo:g}, {hi:g}); inverted range, LO must be <= HI")
    if positive and lo <= 0:
        raise ConfigError(option, f"got ({lo:g}, {hi:g}); must be > 0")
    return lo, hi


@dataclass(frozen=True)
class DatasetConfig:
    """Everything that fixes a dataset's samples (and its file layout); validated on construction.

    Attributes
    ----------
    kernels : tuple of str
        Kernel blocks in sample-index order (gaussian, power, rkky, uniform).
    n_per_kernel : int
        Samples per kernel; the dataset has ``len(kernels) * n_per_kernel`` rows.
    lattice : int
        Side n of the n x n periodic lattice.
    tau_us, dt_us, theta, t2_us, linewidth_khz
        As in :class:`pyecho.EchoParams` (us, us, rad, us or None, kHz).
    seed : int
        Dataset seed (>= 0); sample i uses ``SeedSequence([seed, i])``.
    alpha_xy_range, alpha_z_range : (float, float)
        Uniform ranges of alpha_x = alpha_y and alpha_z (rad/us).
    w_range : (float, float)
        Acceptance window of W = 2 alpha_xy + alpha_z (rad/us).
    xi_range, p_range, gamma_range : (float, float)
        Uniform ranges of the gaussian xi, power p and rkky gamma (lattice spacings / -).
    part_size : int
        Samples per Parquet part file (the unit of resume and sharding).
    """

    kernels: tuple[str, ...] = ("gaussian", "power", "rkky")
    n_per_kernel: int = 5000
    lattice: int = 100
    tau_us: float = 100.0
    dt_us: float = 0.16
    theta: float = math.pi / 2
    t2_us: float | None = None
    linewidth_khz: float = 8.0
    seed: int = 0
    alpha_xy_range: tuple[float, float] = (0.01, 0.1)
    alpha_z_range: tuple[float, float] = (0.01, 0.1)
    w_range: tuple[float, float] = (0.1, 0.3)
    xi_range: tuple[float, float] = (8.0, 32.0)
    p_range: tuple[float, float] = (1.0, 3.0)
    gamma_range: tuple[float, float] = (13.0, 52.0)
    part_size: int = 250

    def __post_init__(self) -> None:
        set_ = lambda name, v: object.__setattr__(self, name, v)  # noqa: E731 (frozen)
        kernels = self.kernels.split(",") if isinstance(self.kernels, str) else self.kernels
        kernels = tuple(str(k).strip() for k in kernels)
        if not kernels:
            raise ConfigError("kernels", f"got none; choose from {', '.join(KERNELS)}")
        for k in kernels:
            if k not in KERNELS:
                raise ConfigError("kernels", f"unknown kernel {k!r}; allowed: {', '.join(KERNELS)}")
        if len(set(kernels)) != len(kernels):
            raise ConfigError("kernels", f"got {','.join(kernels)}; each kernel may appear once")
        set_("kernels", kernels)
        set_("n_per_kernel", _count("n_per_kernel", self.n_per_kernel, 1))
        set_("part_size", _count("part_size", self.part_size, 1))
        set_("seed", _count("seed", self.seed, 0))
        # lattice, times, theta, linewidth, t2: EchoParams owns those rules; the uniform
        # kernel always has a usable kappa, so any error here is about these fields.
        try:
            base = self.echo_params()
        except ParameterError as exc:
            option, _, detail = str(exc).partition(": ")
            raise ConfigError(option, detail) from None
        for name in ("lattice", "tau_us", "dt_us", "theta", "linewidth_khz", "t2_us"):
            set_(name, getattr(base, name))
        for name in ("alpha_xy_range", "alpha_z_range", "w_range"):
            set_(name, _range(name, getattr(self, name)))
        for name in KERNEL_PARAM_FIELDS.values():
            set_(name, _range(name, getattr(self, name), positive=True))
        self._check_w_window()
        for kernel in kernels:
            self._check_kappa(kernel)

    def _check_w_window(self) -> None:
        """W = 2 alpha_xy + alpha_z must land in w_range with positive probability."""
        (a_lo, a_hi), (z_lo, z_hi), (w_lo, w_hi) = self.alpha_xy_range, self.alpha_z_range, self.w_range
        reach_lo, reach_hi = 2 * a_lo + z_lo, 2 * a_hi + z_hi
        if reach_lo == reach_hi:  # both alpha ranges are points: W is fixed
            reachable = w_lo <= reach_lo <= w_hi
        else:  # W has a density that is positive on (reach_lo, reach_hi)
            reachable = max(reach_lo, w_lo) < min(reach_hi, w_hi)
        if not reachable:
            raise ConfigError(
                "w_range",
                f"got ({w_lo:g}, {w_hi:g}); W = 2 alpha_xy + alpha_z only reaches "
                f"[{reach_lo:g}, {reach_hi:g}] with alpha_xy_range {self.alpha_xy_range} and "
                f"alpha_z_range {self.alpha_z_range}, so no sample could be accepted",
            )

    def _check_kappa(self, kernel: str) -> None:
        """Every kernel_param in the kernel's range must give a usable, same-signed kappa."""
        if kernel not in KERNEL_PARAM_FIELDS:
            return
        option = KERNEL_PARAM_FIELDS[kernel]
        lo, hi = getattr(self, option)
        for x in np.linspace(lo, hi, _KAPPA_CHECK_POINTS):
            try:
                self.echo_params(kernel, x)
            except ParameterError as exc:
                raise ConfigError(option, f"got ({lo:g}, {hi:g}); at {x:g}: {exc}") from None
        signs = {np.sign(kernel_stats(kernel, x, self.lattice)[0]) for x in np.linspace(lo, hi, _KAPPA_CHECK_POINTS)}
        if len(signs) > 1:
            raise ConfigError(
                option,
                f"got ({lo:g}, {hi:g}); the {kernel} kernel's kappa changes sign in this range on a "
                f"{self.lattice}x{self.lattice} lattice, so somewhere it cannot normalise the mean field",
            )

    # ---- derived sizes -------------------------------------------------------------------

    @property
    def n_total(self) -> int:
        """Rows of the whole dataset, len(kernels) * n_per_kernel."""
        return len(self.kernels) * self.n_per_kernel

    @property
    def n_tau(self) -> int:
        return self.echo_params().n_tau

    @property
    def n_samples(self) -> int:
        """Length T = 3 n_tau of every recorded series."""
        return self.echo_params().n_samples

    def echo_params(
        self, kernel: str = "uniform", kernel_param: float = 0.0, alpha_xy: float = 0.0, alpha_z: float = 0.0
    ) -> EchoParams:
        """One sample's EchoParams: this config's experiment (lattice, times, pulses, linewidth,
        T2) with the given kernel and couplings."""
        return EchoParams(
            kernel=kernel, kernel_param=kernel_param, alpha_xy=alpha_xy, alpha_z=alpha_z,
            lattice=self.lattice, tau_us=self.tau_us, dt_us=self.dt_us, theta=self.theta,
            linewidth_khz=self.linewidth_khz, t2_us=self.t2_us,
        )

    def kernel_of(self, index: int) -> str:
        """Kernel of sample ``index`` (the block it falls in)."""
        return self.kernels[index // self.n_per_kernel]

    def kernel_param_range(self, kernel: str) -> tuple[float, float]:
        """Uniform range of ``kernel``'s kernel_param; (0, 0) for the parameter-free uniform."""
        return getattr(self, KERNEL_PARAM_FIELDS[kernel]) if kernel in KERNEL_PARAM_FIELDS else (0.0, 0.0)

    # ---- (de)serialisation ---------------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples as lists); ``DatasetConfig.from_dict`` inverts it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> "DatasetConfig":
        """Build from field names; an unknown key is a ConfigError naming it."""
        fields = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in fields:
                raise ConfigError(key, f"unknown dataset option; known: {', '.join(sorted(fields))}")
        return cls(**values)

    def replace(self, **changes) -> "DatasetConfig":
        return DatasetConfig.from_dict({**self.to_dict(), **changes})

    def differing_keys(self, other: "DatasetConfig") -> list[str]:
        """Field names whose values differ between two configs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if mine[k] != theirs[k]]


#: named starting points; CLI options and config files override single fields
PRESETS: dict[str, DatasetConfig] = {
    # SPEC §4: 3 x 5000 samples on 100 x 100, tau 100 us, dt 0.16 us.
    "paper": DatasetConfig(),
    # Same protocol and time grid, sized to simulate in a few minutes on a 2-core CPU.
    "quick": DatasetConfig(n_per_kernel=200, lattice=32, part_size=50),
}


def draw_sample(config: DatasetConfig, index: int) -> tuple[EchoParams, int]:
    """Parameters and detuning seed of sample ``index`` (0 <= index < n_total).

    Returns ``(params, seed)``: ``simulate(params, seed=seed)`` reproduces the sample.
    """
    if not 0 <= index < config.n_total:
        raise ValueError(f"index: got {index}; the dataset has samples 0..{config.n_total - 1}")
    param_seq, detuning_seq = np.random.SeedSequence([config.seed, index]).spawn(2)
    rng = np.random.default_rng(param_seq)
    kernel = config.kernel_of(index)
    low, high = np.array([config.alpha_xy_range, config.alpha_z_range, config.kernel_param_range(kernel)]).T
    w_lo, w_hi = config.w_range
    while True:  # terminates: DatasetConfig checked the window is reachable
        alpha_xy, alpha_z, kernel_param = rng.uniform(low, high)
        if w_lo <= 2.0 * alpha_xy + alpha_z <= w_hi:
            break
    params = config.echo_params(kernel, kernel_param, alpha_xy, alpha_z)
    return params, int(detuning_seq.generate_state(1, np.uint64)[0])


def draw_samples(config: DatasetConfig, indices: Iterable[int]) -> tuple[list[EchoParams], np.ndarray]:
    """:func:`draw_sample` for many indices: (list of EchoParams, uint64 seeds of shape (B,))."""
    drawn = [draw_sample(config, int(i)) for i in indices]
    return [p for p, _ in drawn], np.array([s for _, s in drawn], dtype=np.uint64)

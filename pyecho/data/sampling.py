"""The dataset's samples: a validated config, its presets, and per-sample draws.

Sample ``i`` (0-based, global over the kernel blocks in ``DatasetConfig.kernels`` order)
derives all of its randomness from ``np.random.SeedSequence([config.seed, i])`` alone:

- its parameters by rejection: alpha_xy ~ U(alpha_xy_range), alpha_z ~ U(alpha_z_range),
  kernel_param ~ U(range of its kernel), accepted iff W = 2 alpha_xy + alpha_z lies in
  ``w_range``, otherwise redrawn from the same per-sample stream;
- then its nuisances, each drawn only when its range is not a point (so a config without
  them draws exactly the samples it always drew): the carrier offset center_khz ~
  U(center_khz_range), the transverse relaxation time T2 log-uniform in ``t2_us_range``
  (log T2 ~ U(log lo, log hi)), and the I+ Lindblad rate gamma1_per_us ~ U(gamma1_per_us_range);
- its detuning seed, a uint64 that ``simulate(params, seed=...)`` turns into the detunings.

So any split of the indices into batches, parts, shards or machines draws the same samples.
Every measurement of the ``protocol`` (pyecho.physics.protocol) is made on every sample with
identical parameters and detunings. Couplings are in rad/us, times in us, the linewidth and
carrier offset in kHz, relaxation rates in 1/us (docs/model.md).
"""
from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from pyecho.physics.kernels import KERNELS, kernel_stats
from pyecho.physics.params import DEFAULT_FIELD_EVERY, EchoParams, ParameterError
from pyecho.physics.protocol import HAHN_90, Measurement, Protocol, ProtocolError

#: config field holding the kernel_param range of each parametrised kernel
KERNEL_PARAM_FIELDS = {"gaussian": "xi_range", "power": "p_range", "rkky": "gamma_range"}
#: EchoParams fields shared by every sample of a dataset (the experiment; the protocol adds
#: each measurement's sequence, angle and tau, the nuisance ranges each sample's own values)
EXPERIMENT_FIELDS = ("lattice", "dt_us", "linewidth_khz", "t2_us", "scheme", "field_every",
                     "gamma1_per_us", "gamma2_per_us", "gamma3_per_us", "geometry")
#: points at which a kernel_param range is checked for a usable kappa (no zero crossing)
_KAPPA_CHECK_POINTS = 33


class ConfigError(ParameterError):
    """An invalid dataset option; ``option`` is the config field (CLI: --option-with-dashes)."""

    def __init__(self, option: str, detail: str):
        super().__init__(f"{option}: {detail}")
        self.option = option
        self.detail = detail


def check_known_options(config_class, values: dict, what: str) -> None:
    """ConfigError naming the first key of ``values`` that is not a field of the dataclass
    ``config_class`` (``what``: the options' kind, e.g. "dataset")."""
    known = {f.name for f in dataclasses.fields(config_class)}
    for key in values:
        if key not in known:
            raise ConfigError(key, f"unknown {what} option; known: {', '.join(sorted(known))}")


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
        Samples per kernel; the dataset has ``len(kernels) * n_per_kernel`` samples.
    lattice : int
        Side n of the n x n periodic lattice.
    dt_us, linewidth_khz
        Time step (us) and detuning FWHM (kHz), as in :class:`pyecho.EchoParams`.
    protocol : Protocol (or its text, e.g. "hahn@90,cpmg:8@90/50")
        The measurements made on every sample, each with the same parameters and detunings
        (default: the paper's Hahn echo at 90 degrees, tau = 100 us).
    t2_us : float or None
        One transverse relaxation time for every sample (us), or None.
    t2_us_range : (float, float) or None
        T2 drawn per sample, log-uniform in [lo, hi] (us, 0 < lo <= hi); None: not drawn.
        Give t2_us or t2_us_range, not both.
    scheme, field_every, gamma2_per_us, gamma3_per_us, geometry
        As in :class:`pyecho.EchoParams`; datasets default to the extrapolated scheme with
        a field evaluation every 4 steps (more accurate and faster than the explicit step).
    gamma1_per_us : float
        One I+ Lindblad rate for every sample (1/us).
    gamma1_per_us_range : (float, float)
        The I+ rate drawn per sample, uniform (1/us); (0, 0): not drawn; (g, g): every sample g.
        With a range other than (0, 0), gamma1_per_us must be 0.
    center_khz_range : (float, float)
        Uniform range of the carrier offset center_khz (kHz); (0, 0): none.
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
    dt_us: float = 0.16
    protocol: Protocol = Protocol((HAHN_90,))
    t2_us: float | None = None
    t2_us_range: tuple[float, float] | None = None
    linewidth_khz: float = 8.0
    scheme: str = "extrapolated"
    field_every: int = DEFAULT_FIELD_EVERY
    gamma1_per_us: float = 0.0
    gamma1_per_us_range: tuple[float, float] = (0.0, 0.0)
    gamma2_per_us: float = 0.0
    gamma3_per_us: float = 0.0
    geometry: str = "square"
    center_khz_range: tuple[float, float] = (0.0, 0.0)
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
        try:
            set_("protocol", Protocol.of(self.protocol))
        except ProtocolError as exc:
            raise ConfigError("protocol", str(exc).removeprefix("protocol: ")) from None
        set_("center_khz_range", _range("center_khz_range", self.center_khz_range))
        set_("gamma1_per_us_range", _range("gamma1_per_us_range", self.gamma1_per_us_range))
        if self.gamma1_per_us_range[0] < 0:
            raise ConfigError("gamma1_per_us_range", f"got {self.gamma1_per_us_range}; rates must be >= 0 (1/us)")
        if self.t2_us_range is not None:
            set_("t2_us_range", _range("t2_us_range", self.t2_us_range, positive=True))
            if self.t2_us is not None:
                raise ConfigError("t2_us_range", "give t2_us (one T2) or t2_us_range (drawn per sample), not both")
        if self.gamma1_per_us_range != (0.0, 0.0) and self.gamma1_per_us != 0:
            raise ConfigError("gamma1_per_us_range", "give gamma1_per_us (one rate) or gamma1_per_us_range, not both")
        # the experiment's fields: EchoParams owns those rules; the uniform kernel always has a
        # usable kappa, so any error here is about these fields or the protocol's
        for m in self.protocol:
            try:
                for c in self.center_khz_range:
                    for nuisance in self._nuisance_ends():
                        self.echo_params(measurement=m, center_khz=c, **nuisance)
            except ParameterError as exc:
                option, _, detail = str(exc).partition(": ")
                if option in ("theta", "tau_us", "sequence"):
                    raise ConfigError("protocol", f"measurement {m.text}: {exc}") from None
                raise ConfigError(option, detail) from None
        canonical = self.echo_params()  # the experiment's fields as EchoParams normalises them
        for name in EXPERIMENT_FIELDS:
            set_(name, getattr(canonical, name))
        for name in ("alpha_xy_range", "alpha_z_range", "w_range"):
            set_(name, _range(name, getattr(self, name)))
        for name in KERNEL_PARAM_FIELDS.values():
            set_(name, _range(name, getattr(self, name), positive=True))
        self._check_w_window()
        for kernel in kernels:
            self._check_kappa(kernel)

    def _nuisance_ends(self) -> list[dict]:
        """EchoParams overrides at both ends of every drawn nuisance range (for validation)."""
        ends = [{}]
        if self.t2_us_range is not None:
            ends = [{**e, "t2_us": t} for e in ends for t in self.t2_us_range]
        if self.gamma1_per_us_range != (0.0, 0.0):
            ends = [{**e, "gamma1_per_us": g} for e in ends for g in self.gamma1_per_us_range]
        return ends

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
        """Samples of the whole dataset, len(kernels) * n_per_kernel (each measured every way)."""
        return len(self.kernels) * self.n_per_kernel

    @property
    def n_measurements(self) -> int:
        return len(self.protocol)

    @property
    def record_lengths(self) -> tuple[int, ...]:
        """Samples T_k recorded by every measurement of the protocol."""
        return self.protocol.n_samples(self.dt_us)

    @property
    def spin_steps(self) -> int:
        """What simulating the whole dataset costs: samples x sites x steps of every simulated
        measurement (a measurement that begins a longer one costs nothing)."""
        steps = sum(self.record_lengths[k] for k in self.protocol.sources(self.dt_us))
        return self.n_total * self.lattice**2 * steps

    def echo_params(
        self, kernel: str = "uniform", kernel_param: float = 0.0, alpha_xy: float = 0.0, alpha_z: float = 0.0,
        *, measurement: Measurement | None = None, center_khz: float = 0.0, **nuisance,
    ) -> EchoParams:
        """One sample's EchoParams: this config's experiment (lattice, step, scheme, relaxation,
        geometry), the given kernel, couplings and carrier offset, measured by ``measurement``
        (default: the protocol's first). ``nuisance`` overrides t2_us or gamma1_per_us."""
        experiment = {name: getattr(self, name) for name in EXPERIMENT_FIELDS}
        params = EchoParams(kernel=kernel, kernel_param=kernel_param, alpha_xy=alpha_xy, alpha_z=alpha_z,
                            center_khz=center_khz, **{**experiment, **nuisance})
        return (measurement or self.protocol[0]).apply(params)

    def measured(self, params: EchoParams, k: int) -> EchoParams:
        """A drawn sample's ``params`` as measurement ``k`` of the protocol measures it."""
        return self.protocol[k].apply(params)

    def draw(self, indices: Iterable[int]) -> tuple[list[EchoParams], np.ndarray]:
        """:func:`draw_samples` as a method (the interface pyecho.data.factory runs)."""
        return draw_samples(self, indices)

    def kernel_of(self, index: int) -> str:
        """Kernel of sample ``index`` (the block it falls in)."""
        return self.kernels[index // self.n_per_kernel]

    def kernel_param_range(self, kernel: str) -> tuple[float, float]:
        """Uniform range of ``kernel``'s kernel_param; (0, 0) for the parameter-free uniform."""
        return getattr(self, KERNEL_PARAM_FIELDS[kernel]) if kernel in KERNEL_PARAM_FIELDS else (0.0, 0.0)

    # ---- (de)serialisation ---------------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples as lists, the protocol as a list of measurement dicts);
        ``DatasetConfig.from_dict`` inverts it."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_list() if isinstance(v, Protocol) else list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "DatasetConfig":
        """Build from field names; an unknown key is a ConfigError naming it."""
        check_known_options(cls, values, "dataset")
        return cls(**values)

    def replace(self, **changes) -> "DatasetConfig":
        return DatasetConfig.from_dict({**self.to_dict(), **changes})

    def differing_keys(self, other: "DatasetConfig") -> list[str]:
        """Field names whose values differ between two configs ("kind" for a sweep's config)."""
        if type(other) is not type(self):
            return ["kind"]
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if mine[k] != theirs[k]]


#: what a real sample adds to the paper's prior (drawn per sample, stored as labels, unknown to
#: the models): T2 log-uniform in 300-3000 us, the I+ Lindblad rate up to 1e-4 /us (T1 >= 10 ms)
#: and a carrier offset within +-0.5 kHz of resonance
NUISANCE_PRIOR = {"t2_us_range": (300.0, 3000.0), "gamma1_per_us_range": (0.0, 1e-4), "center_khz_range": (-0.5, 0.5)}
#: the candidate measurements of `pyecho design`: Hahn echoes at a grid of angles, CPMG and CP
#: trains of 2-16 refocusing pulses at tau = 100 us, CPMG trains of 4-32 at 50 us and of 8-32 at
#: 25 us, and a CPMG train at 75 degrees (all prefixes of a train share its one simulation)
DESIGN_CANDIDATES = ("hahn@30,hahn@45,hahn@60,hahn@75,hahn@90,cpmg:2@90,cpmg:4@90,cpmg:8@90,cpmg:16@90,"
                     "cp:2@90,cp:4@90,cp:8@90,cp:16@90,cpmg:4@90/50,cpmg:8@90/50,cpmg:16@90/50,cpmg:32@90/50,"
                     "cpmg:8@90/25,cpmg:16@90/25,cpmg:32@90/25,cpmg:8@75")

#: the measurements of the `range` preset (docs/design.md says how they were chosen)
RANGE_PROTOCOL = "cpmg:3@90/100,hahn@75/100,cpmg:8@90/25"

#: named starting points; CLI options and config files override single fields
PRESETS: dict[str, DatasetConfig] = {
    # The paper's protocol (docs/model.md): 3 x 5000 samples on 100 x 100, tau 100 us, dt 0.16 us.
    "paper": DatasetConfig(),
    # Same protocol and time grid, sized to simulate in a few minutes on a 2-core CPU.
    "quick": DatasetConfig(n_per_kernel=200, lattice=32, part_size=50),
    # The paper's samples, each also at 75 degrees, where the echo's
    # phase carries alpha_z; 75 degrees complemented 90 best among 15-120 degrees at SNR inf,
    # 200 and 50 (the angle study of pyecho learn on runs of 'quick' with 7 angles, docs/learn.md).
    "angles": DatasetConfig(protocol="hahn@90,hahn@75"),
    # `pyecho design`'s simulations: every candidate measurement of 900 samples with the nuisances
    "design": DatasetConfig(protocol=DESIGN_CANDIDATES, n_per_kernel=300, part_size=30, **NUISANCE_PRIOR),
    # What the correlations' range needs (docs/design.md): the paper's samples with the nuisances
    # of a real sample, each measured by a short CPMG train at 90 degrees and tau = 100 us (it
    # begins with the paper's Hahn echo), a Hahn echo at 75 degrees (alpha_z, W) and a fast CPMG
    # train at tau = 25 us (T2, the echo-to-echo evolution). Chosen by `pyecho design` (64 x 64,
    # 600 samples, SNR 200) as the best protocol within ~9 000 simulated steps per sample, and
    # confirmed on 100 x 100 (within 0.004 of every protocol of <= 9 000 steps).
    "range": DatasetConfig(protocol=RANGE_PROTOCOL, **NUISANCE_PRIOR),
    # The range preset sized like quick: `make demo`'s data (a minute of simulation here)
    "quick-range": DatasetConfig(protocol=RANGE_PROTOCOL, n_per_kernel=200, lattice=32, part_size=50,
                                 **NUISANCE_PRIOR),
}
#: one line per preset, for help texts
PRESET_NOTES: dict[str, str] = {
    "paper": "the paper's 15 000 Hahn echoes at 90 degrees on 100 x 100",
    "quick": "600 Hahn echoes on 32 x 32, a few minutes",
    "angles": "the paper's samples at 90 and 75 degrees",
    "design": "900 samples measured by every candidate of `pyecho design`, with T2, gamma1 and carrier offset drawn",
    "range": f"15 000 samples with T2, gamma1 and carrier offset drawn, measured by {RANGE_PROTOCOL}",
    "quick-range": "the range preset's 600 samples on 32 x 32 (make demo)",
}


def draw_sample(config: DatasetConfig, index: int) -> tuple[EchoParams, int]:
    """Parameters (measured by the protocol's first measurement) and detuning seed of sample
    ``index`` (0 <= index < n_total).

    Returns ``(params, seed)``: ``simulate(params, seed=seed)`` reproduces the sample;
    ``measurement.apply(params)`` gives it measured another way of ``config.protocol``.
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
    # nuisances, each drawn only where its range is not a point (older configs keep their samples)
    c_lo, c_hi = config.center_khz_range
    center_khz = rng.uniform(c_lo, c_hi) if c_hi > c_lo else c_lo
    nuisance = {}
    if config.t2_us_range is not None:
        t_lo, t_hi = config.t2_us_range
        nuisance["t2_us"] = float(np.exp(rng.uniform(np.log(t_lo), np.log(t_hi)))) if t_hi > t_lo else t_lo
    g_lo, g_hi = config.gamma1_per_us_range
    if g_hi > g_lo or g_lo > 0:  # a point range is that rate, drawn without randomness
        nuisance["gamma1_per_us"] = float(rng.uniform(g_lo, g_hi)) if g_hi > g_lo else g_lo
    params = config.echo_params(kernel, kernel_param, alpha_xy, alpha_z, center_khz=center_khz, **nuisance)
    return params, int(detuning_seq.generate_state(1, np.uint64)[0])


def draw_samples(config: DatasetConfig, indices: Iterable[int]) -> tuple[list[EchoParams], np.ndarray]:
    """:func:`draw_sample` for many indices: (list of EchoParams, uint64 seeds of shape (B,))."""
    drawn = [draw_sample(config, int(i)) for i in indices]
    return [p for p, _ in drawn], np.array([s for _, s in drawn], dtype=np.uint64)

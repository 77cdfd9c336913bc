"""Trust on measured echoes: the saved predictor checked on records simulated for the purpose.

Never on training or calibration rows: fresh samples are drawn from the dataset's own prior with
another seed, simulated by the same engine, and handed to the predictor the way a spectrometer
gives them -- each sample with a random receiver phase (uniform) and gain (log-uniform 0.1-10),
complex white noise at SNR ∞, 200, 50 and 20 (an independent draw each; SNR as in
:func:`~pyecho.data.records.add_complex_noise`), and the first ``dead_time_us`` after the
excitation missing (NaN: the receiver's dead time). Reported per SNR: the in-domain rate, the
90 % intervals' coverage of every target, and the headline's scores. Then samples *outside* the
prior, each set at SNR 200 with a random receiver: W and alpha_xy above it, alpha_z above it,
each kernel's parameter beyond its range, and the right samples measured with a wrong tau
(x 0.85, recorded to the model's length) or a wrong angle (x 0.8): the rate the guard flags.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pyecho.data.factory import simulate_part
from pyecho.data.records import add_complex_noise
from pyecho.data.sampling import DatasetConfig
from pyecho.learn.base import Note, no_note
from pyecho.learn.models.scores import TaskScores
from pyecho.learn.models.targets import EchoPredictions, EchoTargets
from pyecho.physics.params import steps_per_tau
from pyecho.physics.protocol import Measurement, Protocol, RecordGrid
from pyecho.physics.sequence import PulseSequence, step_plan

#: the SNRs of the fresh in-prior records (inf: noise-free)
FRESH_SNRS = (math.inf, 200.0, 50.0, 20.0)
#: the SNR of the out-of-prior records
SHIFT_SNR = 200.0
#: a receiver's gain is drawn log-uniformly in this range
GAIN_RANGE = (0.1, 10.0)
#: the fresh samples' seed is the dataset's plus this (never a training sample)
FRESH_SEED_OFFSET = 1_000_003
#: a wrong tau and a wrong angle, as factors of the model's
WRONG_TAU, WRONG_ANGLE = 0.85, 0.8


@dataclass(frozen=True)
class FreshCheck:
    """In-prior fresh records at one SNR: in-domain rate, interval coverage (target -> fraction),
    the headline's scores."""

    snr: float
    n: int
    in_domain: float
    coverage: dict
    scores: TaskScores


@dataclass(frozen=True)
class ShiftCheck:
    """Records outside the prior: ``flagged`` is the fraction the guard calls out of domain."""

    name: str
    n: int
    flagged: float


@dataclass(frozen=True)
class TrustReport:
    fresh: tuple[FreshCheck, ...]
    shifted: tuple[ShiftCheck, ...]
    dead_time_us: float
    n_per_kernel: int
    seed: int

    def at(self, snr: float) -> FreshCheck:
        return next(f for f in self.fresh if f.snr == snr)


def as_measured(records: tuple[np.ndarray, ...], grid: RecordGrid, rng: np.random.Generator, *, snr: float,
                dead_time_us: float) -> tuple[np.ndarray, ...]:
    """Records as a spectrometer gives them: noise at ``snr``, one random receiver phase and gain
    per sample, the first ``dead_time_us`` after the excitation missing (NaN)."""
    noisy = add_complex_noise(records, snr, rng)
    B = noisy[0].shape[0]
    receiver = np.exp(rng.uniform(*np.log(GAIN_RANGE), B)) * np.exp(1j * rng.uniform(0, 2 * np.pi, B))
    out = []
    for k, R in enumerate(noisy):
        R = (R * receiver[:, None]).astype(np.complex128)
        R[:, grid.times_us(k) <= dead_time_us] = np.nan
        out.append(R)
    return tuple(out)


def _simulate(config: DatasetConfig, grid: RecordGrid, note: Note, name: str):
    """Records of every sample of ``config`` on the model's grid, and their targets."""
    note(f"simulating {name} ({config.n_total} samples)")
    frame, _ = simulate_part(config, 0, config.n_total - 1, backend="torch", device="auto", dtype="float32",
                             batch_size=32)
    frame = frame.sort("sample_id", "measurement")
    records = []
    for k, T in enumerate(grid.lengths):
        rows = frame.filter(frame["measurement"] == k)
        M = np.empty((rows.height, T), np.complex64)
        M.real = rows["M_re"].explode().to_numpy().reshape(-1, T)
        M.imag = rows["M_im"].explode().to_numpy().reshape(-1, T)
        records.append(M)
    return tuple(records), frame.filter(frame["measurement"] == 0)


def _wrong_tau(m: Measurement, dt_us: float, n_samples: int) -> Measurement:
    """The pulses of ``m`` at ``WRONG_TAU`` times its spacing, recorded to ``n_samples``."""
    n_tau = steps_per_tau(m.tau_us * WRONG_TAU, dt_us)
    plan = step_plan(m.sequence, m.theta, n_tau, dt_us)
    pulses = tuple((s * dt_us, a, ph) for s, a, ph in zip(plan.pulse_steps, plan.pulse_angle, plan.pulse_phase))
    return Measurement(PulseSequence(pulses, n_samples * dt_us), m.theta, m.tau_us)


def run_trust_check(predictor, config: DatasetConfig, *, n_per_kernel: int, seed: int = 0,
                    note: Note = no_note) -> TrustReport:
    """The checks of the module docstring for a saved ``predictor`` (pyecho.learn.predictor) of a
    dataset simulated from ``config``."""
    grid, dead = predictor.grid, predictor.dead_time_us
    base = config.replace(n_per_kernel=n_per_kernel, seed=config.seed + FRESH_SEED_OFFSET, part_size=n_per_kernel)
    rng = np.random.default_rng([seed, FRESH_SEED_OFFSET])
    records, labels = _simulate(base, grid, note, "fresh in-prior samples")
    truth = EchoTargets.from_labels(labels, predictor.targets)
    fresh = []
    for snr in FRESH_SNRS:
        table = predictor.predict(as_measured(records, grid, rng, snr=snr, dead_time_us=dead))
        coverage = {t: float(np.mean((truth[t] >= table.lo[t]) & (truth[t] <= table.hi[t]))) for t in predictor.targets}
        scores = TaskScores.of(EchoPredictions(table.kernel_proba, table.values), truth,
                               predictor.calibration.kernel.threshold)
        fresh.append(FreshCheck(float(snr), len(table.in_domain), float(np.mean(table.in_domain)), coverage, scores))
    shifts = _shifted_configs(base, grid)
    shifted = []
    for name, cfg in shifts.items():
        recs, _ = _simulate(cfg, grid, note, name)
        table = predictor.predict(as_measured(recs, grid, rng, snr=SHIFT_SNR, dead_time_us=dead))
        shifted.append(ShiftCheck(name, len(table.in_domain), float(1.0 - np.mean(table.in_domain))))
    return TrustReport(tuple(fresh), tuple(shifted), dead, n_per_kernel, seed)


def _shifted_configs(base: DatasetConfig, grid: RecordGrid) -> dict[str, DatasetConfig]:
    """Configs of samples outside ``base``'s prior (names as in the module docstring)."""
    few = max(4, base.n_per_kernel // 3)
    out = {
        "W and alpha_xy above the prior": base.replace(alpha_xy_range=(0.13, 0.2), w_range=(0.3, 0.5),
                                                       n_per_kernel=few, part_size=few),
        "alpha_z above the prior": base.replace(alpha_xy_range=(0.01, 0.05), alpha_z_range=(0.15, 0.25),
                                                w_range=(0.17, 0.35), n_per_kernel=few, part_size=few),
    }
    beyond = {"gaussian": {"xi_range": (2.0, 5.0)}, "power": {"p_range": (3.5, 5.0)}}
    for kernel, change in beyond.items():
        if kernel in base.kernels:
            out[f"{kernel} kernel parameter beyond the prior"] = base.replace(kernels=(kernel,), n_per_kernel=3 * few,
                                                                              part_size=3 * few, **change)
    dt = grid.dt_us
    out[f"tau x {WRONG_TAU:g}"] = base.replace(
        protocol=Protocol(tuple(_wrong_tau(m, dt, T) for m, T in zip(grid.protocol, grid.lengths))),
        n_per_kernel=few, part_size=few)
    out[f"angle x {WRONG_ANGLE:g}"] = base.replace(
        protocol=Protocol(tuple(Measurement(m.sequence, m.theta * WRONG_ANGLE, m.tau_us) for m in grid.protocol)),
        n_per_kernel=few, part_size=few)
    return out

"""Which pulse angles carry W and alpha_z: a linear probe on every angle and pair of angles.

At 90° the z magnetisation vanishes and alpha_z hardly enters the echo; at theta != 90° the
uniform m_z shifts every spin's frequency by alpha_z <m_z>, and the echo's *phase* carries it.
For a multi-angle dataset this stage fits one ridge regression (standardised, its penalty
chosen by efficient leave-one-out on the training rows) per target and per set of angles:
every angle alone, and the first angle (90° in the recommended protocol) with each other one.
Inputs are the phase/gain-referenced complex records (Re and Im, block-averaged in time).

Every probe is repeated at the SNRs of :data:`ANGLE_SNRS` (complex white noise on every row,
one receiver for all angles: :func:`~pyecho.learn.inputs.add_complex_noise`), because a small
angle gives a large m_z but a small transverse signal, and which wins depends on the noise.
The best second angle is the one with the highest alpha_z leave-one-out R² on the training
rows, averaged over those SNRs (never the test rows); the test R² is reported beside it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pyecho.learn.base import NO_JSON, LearnData, Note, Split, Target, no_note
from pyecho.learn.inputs import InputView, add_complex_noise

#: the targets an angle can reveal (alpha_xy is read well at 90° already)
ANGLE_TARGETS = (Target.W, Target.ALPHA_Z)
#: ridge penalties searched by leave-one-out
RIDGE_ALPHAS = tuple(np.logspace(-3, 4, 15))
#: block-averaging of the time axis for the probe (4 samples = 0.64 µs at the default dt)
PROBE_DECIMATE = 4
#: signal-to-noise ratios of the probes (inf: noise-free)
ANGLE_SNRS = (np.inf, 200.0, 50.0)
#: what the probe sees: referenced Re and Im of each angle, block-averaged
PROBE_VIEW = InputView(channels="reim", decimate=PROBE_DECIMATE)


@dataclass(frozen=True)
class AngleScore:
    """R² of one target from one set of angles (rad): leave-one-out on the training rows, test."""

    thetas: tuple[float, ...]
    target: str
    snr: float
    r2_train_loo: float
    r2_test: float

    @property
    def label(self) -> str:
        return " + ".join(f"{np.degrees(t):.0f}°" for t in self.thetas)


@dataclass(frozen=True)
class AngleStudy:
    """Every probe, and the second angle that best complements the first (by training LOO R²)."""

    scores: tuple[AngleScore, ...]
    first_theta: float
    best_second_theta: float
    n_train: int
    n_test: int
    view: InputView = field(metadata=NO_JSON, default=PROBE_VIEW)

    def score(self, thetas: tuple[float, ...], target: str, snr: float = np.inf) -> AngleScore:
        return next(s for s in self.scores if s.thetas == tuple(thetas) and s.target == target and s.snr == snr)


def _loo_r2(ridge: RidgeCV, y: np.ndarray) -> float:
    """R² from the leave-one-out squared errors RidgeCV stored for its chosen penalty."""
    squared_errors = ridge.cv_results_[:, list(ridge.alphas).index(ridge.alpha_)]
    return float(1.0 - squared_errors.mean() / np.var(y))


def run_angle_study(data: LearnData, split: Split, *, snrs: tuple[float, ...] = ANGLE_SNRS,
                    note: Note = no_note) -> AngleStudy | None:
    """The probe for every angle and every (first angle, other angle) pair at every SNR; None
    for a single-angle dataset."""
    n_angles = data.series.shape[1]
    if n_angles < 2:
        return None
    view = PROBE_VIEW
    thetas = tuple(float(t) for t in data.thetas)
    combos = [(a,) for a in range(n_angles)] + [(0, a) for a in range(1, n_angles)]
    scores = []
    for snr in snrs:
        noisy = add_complex_noise(data.series, snr, np.random.default_rng(split.seed))
        X_angle = [view.transform(noisy[:, a]).reshape(data.n_samples, -1) for a in range(n_angles)]
        for combo in combos:
            X = np.hstack([X_angle[a] for a in combo])
            for target in ANGLE_TARGETS:
                note(f"SNR {snr:g}: {'+'.join(f'{np.degrees(thetas[a]):.0f}' for a in combo)} deg, {target.value}")
                y = data.labels.target(target)
                model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS, store_cv_results=True))
                model.fit(X[split.train], y[split.train])
                y_test = y[split.test]
                r2_test = 1.0 - np.mean((y_test - model.predict(X[split.test])) ** 2) / np.var(y_test)
                scores.append(AngleScore(tuple(thetas[a] for a in combo), target.value, float(snr),
                                         _loo_r2(model[-1], y[split.train]), float(r2_test)))
    pair_loo = {a: np.mean([s.r2_train_loo for s in scores if s.thetas == (thetas[0], thetas[a])
                            and s.target == Target.ALPHA_Z.value]) for a in range(1, n_angles)}
    best = thetas[max(pair_loo, key=pair_loo.get)]
    return AngleStudy(tuple(scores), thetas[0], best, split.n_train, split.n_test, view)

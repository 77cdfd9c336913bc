"""Which pulse angles carry W and alpha_z, and what a carrier offset costs (docs/learn.md).

    python examples/angle_study.py runs/anglescan32
    python examples/angle_study.py runs/quick_angles runs/quick_angles_offset

For each multi-angle dataset: the angle study of `pyecho learn` (a ridge probe on every angle
alone and on 90° with each other angle, at SNR inf, 200 and 50; leave-one-out R² on the
training rows, which chooses, and test R²). With two datasets of the same samples, the second
with carrier offsets (`pyecho sim --center-khz-range -2,2`), also the probe trained on the
first and tested on the second: what an offset the model never saw costs.
"""
from __future__ import annotations

import sys

import numpy as np

from pyecho.data.store import load_dataset
from pyecho.learn.angles import run_angle_study
from pyecho.learn.base import LearnData, make_split

TEST_SIZE, SEED = 0.2, 0


def study(path: str) -> LearnData:
    data = LearnData.from_dataset(load_dataset(path))
    result = run_angle_study(data, make_split(data.labels, TEST_SIZE, SEED))
    for s in result.scores:
        print(f"{path:28s} SNR {s.snr:5g}  {s.label:12s} {s.target:8s} LOO R2 {s.r2_train_loo:.3f}  test R2 {s.r2_test:.3f}")
    print(f"{path}: best second angle {np.degrees(result.best_second_theta):.0f} degrees")
    return data


def offset_cost(clean: LearnData, shifted: LearnData) -> None:
    """The two-angle probe fitted on ``clean`` rows, scored on the same test samples with offsets."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from pyecho.learn.angles import PROBE_VIEW, RIDGE_ALPHAS

    split = make_split(clean.labels, TEST_SIZE, SEED)
    view = PROBE_VIEW

    def features(d: LearnData) -> np.ndarray:
        return np.hstack([view.transform(d.series[:, a]).reshape(d.n_samples, -1) for a in range(d.series.shape[1])])

    X_clean, X_shifted = features(clean), features(shifted)
    for target in ("W", "alpha_z"):
        y = getattr(clean.labels, target)
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)).fit(X_clean[split.train], y[split.train])
        y_test = y[split.test]
        r2 = 1 - np.mean((y_test - model.predict(X_shifted[split.test])) ** 2) / np.var(y_test)
        print(f"trained without offsets, tested with them: all angles {target} test R2 {r2:.3f}")


if __name__ == "__main__":
    datasets = [study(p) for p in sys.argv[1:]]
    if len(datasets) == 2:
        offset_cost(*datasets)

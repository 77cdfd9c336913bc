from types import SimpleNamespace

import numpy as np
import pytest
from imblearn.over_sampling import SMOTE

from pyecho.learn.paper import classify
from pyecho.learn.base import (RANGE_NP, RANGE_P, ClassScores, LearnData, ModelScore, RegScores, Split, Task,
                               mean_std, pool_seeds)
from pyecho.learn.paper.features import FeatureLayout, build_features, normalise_abs
from pyecho.learn.paper.screening import w_bin

SEEN: list[np.ndarray] = []


class RecordingSMOTE(SMOTE):
    """SMOTE that records every matrix it is asked to resample (clones share SEEN)."""

    def fit_resample(self, X, y, **kw):
        SEEN.append(np.array(X, copy=True))
        return super().fit_resample(X, y, **kw)


def _imbalanced(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) % 3 == 0, RANGE_P, RANGE_NP)  # 1/3 positives, as in the paper
    X = rng.normal(size=(n, 6)) + (y == RANGE_P)[:, None] * 1.5
    return X, y


def _split(strata, test_size, seed) -> Split:
    from sklearn.model_selection import train_test_split

    tr, te = train_test_split(np.arange(len(strata)), test_size=test_size, random_state=seed, stratify=strata)
    return Split(train=np.sort(tr), test=np.sort(te), seed=seed, test_size=test_size)


def test_class_scores_are_the_four_metrics_by_hand():
    y_true = np.array(["P", "P", "NP", "NP", "NP"])
    y_pred = np.array(["P", "NP", "NP", "NP", "P"])
    s = ClassScores.of(y_true, y_pred, (RANGE_NP, RANGE_P), RANGE_P)
    # P: precision 1/2, recall 1/2; NP: precision 2/3, recall 2/3
    assert s.f1_power == pytest.approx(0.5)
    assert s.f1_macro == pytest.approx((0.5 + 2 / 3) / 2)
    assert s.f1_weighted == pytest.approx((2 * 0.5 + 3 * 2 / 3) / 5)
    assert s.accuracy == pytest.approx(0.6)
    # 3 classes: F1 of the power class among them
    s3 = ClassScores.of(np.array(["power", "rkky", "gaussian"]), np.array(["power", "gaussian", "gaussian"]),
                        ("gaussian", "power", "rkky"), "power")
    assert s3.f1_power == 1.0 and s3.accuracy == pytest.approx(2 / 3)


def test_mean_std_and_pooling_over_seeds():
    a, b = RegScores(r2=0.5, mae=1.0), RegScores(r2=0.7, mae=3.0)
    mean, std = mean_std([a, b])
    assert mean == RegScores(0.6, 2.0) and std.r2 == pytest.approx(0.1) and std.mae == pytest.approx(1.0)
    assert mean_std([a]) == (a, None)
    runs = [[ModelScore.single("rf", "W", "x", "paper", s, seed, 8, 2)] for seed, s in ((0, a), (1, b))]
    pooled, = pool_seeds(runs)
    assert pooled.seeds == (0, 1) and pooled.scores == mean and pooled.spread == std
    with pytest.raises(ValueError, match="disagree"):
        pool_seeds([runs[0], [ModelScore.single("hgb", "W", "x", "paper", b, 1, 8, 2)]])


def test_smote_never_touches_test_rows():
    X, y = _imbalanced()
    split = _split(y, 0.25, 0)
    SEEN.clear()
    pipe = classify.make_rf_pipeline(20, seed=0, sampler=RecordingSMOTE(random_state=0))
    res = classify.fit_evaluate(pipe, X, y, split.train, split.test, Task.PVNP, cv_folds=3, seed=0)
    assert len(SEEN) == 1 + 3  # the final fit and each CV fold
    train_rows = {r.tobytes() for r in X[split.train]}
    test_rows = {r.tobytes() for r in X[split.test]}
    for Xs in SEEN:
        rows = {r.tobytes() for r in Xs}
        assert rows <= train_rows and not rows & test_rows
    # CV folds resample strictly less than the whole training part (their validation rows excluded)
    assert all(len(Xs) < len(split.train) for Xs in SEEN[1:])
    # test predictions are for the real test rows only
    assert res.y_pred.shape == (split.n_test,)
    assert res.confusion.sum() == split.n_test and res.n_test == split.n_test
    assert res.cv is not None and res.cv.folds == 3


def test_obvious_class_difference_reaches_high_f1(synthetic):
    ld = LearnData.from_dataset(synthetic)
    lay = FeatureLayout.build(ld.t_us, ld.echo_index, 120)
    F = lay.features(normalise_abs(ld.M))["pointwise"].to_numpy()
    y = np.where(synthetic.labels["is_power"].to_numpy(), RANGE_P, RANGE_NP)
    split = _split(synthetic.labels["kernel"].to_numpy(), 0.3, 0)
    res = classify.fit_evaluate(classify.make_rf_pipeline(50, seed=0), F, y, split.train, split.test, Task.PVNP,
                                cv_folds=3)
    assert res.scores.f1_power > 0.9 and res.cv.mean > 0.9
    curve = classify.pruning_curve(F, y, split, res, lambda: classify.make_rf_pipeline(20, seed=0),
                                   lay.pointwise_names, cv_folds=0)
    n = [s.n_features for s in curve.steps]
    assert n[0] == 120 and n[-1] == 2 and all(a > b for a, b in zip(n, n[1:]))
    assert len(curve.steps[-1].features) == 2


def test_w_bins():
    np.testing.assert_array_equal(w_bin([0.1, 0.169, 0.17, 0.229, 0.23, 0.3, 0.05, 0.4]),
                                  [0, 0, 1, 1, 2, 2, 0, 2])

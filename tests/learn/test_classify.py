import numpy as np
from imblearn.over_sampling import SMOTE

from pyecho.learn import classify
from pyecho.learn.features import FeatureLayout, normalise_abs

SEEN: list[np.ndarray] = []


class RecordingSMOTE(SMOTE):
    """SMOTE that records every matrix it is asked to resample (clones share SEEN)."""

    def fit_resample(self, X, y, **kw):
        SEEN.append(np.array(X, copy=True))
        return super().fit_resample(X, y, **kw)


def _imbalanced(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) % 3 == 0, "P", "NP")  # 1/3 positives, as in the paper
    X = rng.normal(size=(n, 6)) + (y == "P")[:, None] * 1.5
    return X, y


def test_smote_never_touches_test_rows():
    X, y = _imbalanced()
    train, test = classify.split_indices(y, 0.25, seed=0)
    SEEN.clear()
    pipe = classify.make_rf_pipeline(20, seed=0, sampler=RecordingSMOTE(random_state=0))
    res = classify.fit_evaluate(pipe, X, y, train, test, ["NP", "P"], cv_folds=3, seed=0)
    assert len(SEEN) == 1 + 3  # the final fit and each CV fold
    train_rows = {r.tobytes() for r in X[train]}
    test_rows = {r.tobytes() for r in X[test]}
    for Xs in SEEN:
        rows = {r.tobytes() for r in Xs}
        assert rows <= train_rows and not rows & test_rows
    # CV folds resample strictly less than the whole training part (their validation rows excluded)
    assert all(len(Xs) < len(train) for Xs in SEEN[1:])
    # test predictions are for the real test rows only
    assert res["y_pred"].shape == (len(test),)
    assert res["confusion"].sum() == len(test)


def test_obvious_class_difference_reaches_high_f1(synthetic):
    lay = FeatureLayout.build(synthetic.t_us, synthetic.echo_index, 120)
    F = lay.features(normalise_abs(synthetic.M))["pointwise"].to_numpy()
    y = np.where(synthetic.labels["is_power"].to_numpy(), "P", "NP")
    train, test = classify.split_indices(synthetic.labels["kernel"].to_numpy(), 0.3, seed=0)
    res = classify.fit_evaluate(classify.make_rf_pipeline(50, seed=0), F, y, train, test, ["NP", "P"], cv_folds=3)
    assert res["f1_test"] > 0.9 and res["f1_cv"] > 0.9
    steps = classify.pruning_curve(F, y, train, test, ["NP", "P"], res,
                                   lambda: classify.make_rf_pipeline(20, seed=0), lay.pointwise_names, cv_folds=0)
    assert [s["n_features"] for s in steps][0] == 120 and steps[-1]["n_features"] == 2
    assert all(a["n_features"] > b["n_features"] for a, b in zip(steps, steps[1:]))


def test_w_bins():
    np.testing.assert_array_equal(classify.w_bin([0.1, 0.169, 0.17, 0.229, 0.23, 0.3, 0.05, 0.4]),
                                  [0, 0, 1, 1, 2, 2, 0, 2])

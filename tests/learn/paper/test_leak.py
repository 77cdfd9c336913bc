"""The paper's leak: the reproduction oversamples before splitting; the leak-free stage never does."""
import numpy as np
from imblearn.over_sampling import SMOTE

from pyecho.learn.paper import classify
from pyecho.learn.base import RANGE_NP, RANGE_P, Budget, LearnData, Task, make_split
from pyecho.learn.paper.features import build_features
from pyecho.learn.paper.leak import reproduce_leak


class KeepingSMOTE(SMOTE):
    """SMOTE that keeps what it was given and what it returned."""

    calls: list = []

    def fit_resample(self, X, y, **kw):
        X_os, y_os = super().fit_resample(X, y, **kw)
        KeepingSMOTE.calls.append((np.array(X, copy=True), np.array(X_os, copy=True)))
        return X_os, y_os


def _imbalanced(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) % 3 == 0, RANGE_P, RANGE_NP)
    X = rng.normal(size=(n, 5)) + (y == RANGE_P)[:, None]
    return X, y


def test_leak_reproduction_oversamples_all_rows_before_the_split():
    X, y = _imbalanced()
    KeepingSMOTE.calls = []
    res = reproduce_leak(X, y, test_size=0.2, seed=0, n_trees=10, sampler=KeepingSMOTE(random_state=0))
    (seen, X_os), = KeepingSMOTE.calls
    assert np.array_equal(seen, X)  # every row, test rows included, went into the oversampler
    n_p, n_np = int((y == RANGE_P).sum()), int((y == RANGE_NP).sum())
    assert res.n_rows == len(X) and res.n_synthetic == n_np - n_p == len(X_os) - len(X)
    # the test set holds synthetic rows: rows that are no echo of the data
    original = {r.tobytes() for r in X}
    synthetic_in_test = [i for i in res.test_index if X_os[i].tobytes() not in original]
    assert len(synthetic_in_test) == res.n_test_synthetic > 0
    assert res.n_test == len(res.test_index) == int(np.ceil(0.2 * len(X_os)))  # sklearn rounds the test part up
    assert res.model_scores()[0].evaluation.startswith("the paper's leak")


def test_leak_free_classifier_stage_never_oversamples_a_test_row(synthetic, monkeypatch):
    seen = []

    class RecordingSMOTE(SMOTE):
        def fit_resample(self, X, y, **kw):
            seen.append(np.array(X, copy=True))
            return super().fit_resample(X, y, **kw)

    monkeypatch.setattr(classify, "SMOTE", RecordingSMOTE)
    ld = LearnData.from_dataset(synthetic)
    feats = build_features(ld, 120)
    split = make_split(ld.labels, 0.2, 0)
    budget = Budget(rf_trees=5, aux_trees=5)
    res = classify.run_classifier(feats, ld.labels, split, Task.PVNP, budget, 1, cv_folds=2)
    assert len(seen) == 2 * (1 + 2)  # two feature sets: the final fit and two CV folds each
    for fs, r in res.items():
        test_rows = {row.tobytes() for row in feats.tables[fs][split.test]}
        mats = [m for m in seen if m.shape[1] == feats.tables[fs].shape[1]]
        assert mats and all(not {row.tobytes() for row in m} & test_rows for m in mats)
        assert r.n_test == split.n_test

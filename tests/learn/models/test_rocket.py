"""MiniRocket features + linear heads: learning, saving without pickle, refusing other versions."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, r2_score

from pyecho.learn.inputs import KERNEL_CLASSES, InputView, ModelFileError
from pyecho.learn.rocket import CONFIG_FILE, MODEL_FILE, RocketModel
from tests.learn.test_inputs import make_learnable_echoes

N_KERNELS = 504  # 6 x 84: small and fast


@pytest.fixture(scope="module")
def fitted():
    M, tg = make_learnable_echoes(240, n_samples=300, seed=3)
    train, test = np.arange(180), np.arange(180, 240)
    model = RocketModel(view=InputView(decimate=2), n_kernels=N_KERNELS, random_state=0)
    return model.fit(M[train], tg.take(train)), M, tg, test


def test_learns_a_trivially_learnable_problem(fitted):
    model, M, tg, test = fitted
    pred = model.predict(M[test])
    assert pred.kernel_proba.shape == (60, len(KERNEL_CLASSES))
    np.testing.assert_allclose(pred.kernel_proba.sum(axis=1), 1.0)
    assert f1_score(tg.kernel[test], pred.kernel, average="macro") > 0.9  # chance: 1/3
    assert r2_score(tg.W[test], pred.W) > 0.8
    assert model.transform(M[test]).shape == (60, model.n_features_)
    assert model.C_ in model.C_grid and set(model.ridge_alpha_.values()) <= set(model.ridge_alphas)


def test_no_transform_is_the_linear_baseline_on_the_view_itself(tmp_path):
    M, tg = make_learnable_echoes(240, n_samples=300, seed=4)
    view = InputView(channels="reim_abs", decimate=3)
    model = RocketModel(view=view, transform="none", random_state=0).fit(M[:180], tg.take(np.arange(180)))
    assert model.n_features_ == 3 * 100
    np.testing.assert_allclose(model.transform(M[180:]),
                               model.parts_["scaler"].transform(view.transform(M[180:]).reshape(60, -1)), atol=1e-6)
    assert f1_score(tg.kernel[180:], model.predict(M[180:]).kernel, average="macro") > 0.9
    loaded = RocketModel.load(model.save(tmp_path / "linear"))
    np.testing.assert_array_equal(loaded.predict(M[180:]).kernel_proba, model.predict(M[180:]).kernel_proba)


def test_save_load_round_trip_gives_identical_predictions(fitted, tmp_path):
    model, M, _, test = fitted
    model.save(tmp_path / "rocket")
    loaded = RocketModel.load(tmp_path / "rocket")
    a, b = model.predict(M[test]), loaded.predict(M[test])
    np.testing.assert_array_equal(a.kernel_proba, b.kernel_proba)
    np.testing.assert_array_equal(a.regression(), b.regression())
    assert sorted(p.name for p in (tmp_path / "rocket").iterdir()) == [CONFIG_FILE, MODEL_FILE]


def test_a_model_from_another_version_is_refused(fitted, tmp_path):
    model, *_ = fitted
    d = model.save(tmp_path / "old")
    cfg = json.loads((d / CONFIG_FILE).read_text())
    (d / CONFIG_FILE).write_text(json.dumps({**cfg, "pyecho_version": "0.0.1"}))
    with pytest.raises(ModelFileError, match=r"rocket\.json: pyecho_version is '0\.0\.1'"):
        RocketModel.load(d)


def test_a_model_file_with_untrusted_types_is_refused(fitted, tmp_path):
    import skops.io as sio

    model, *_ = fitted
    d = model.save(tmp_path / "evil")
    sio.dump({**model.parts_, "extra": InputView()}, d / MODEL_FILE)
    with pytest.raises(ModelFileError, match="not trusted: pyecho.learn.inputs.InputView"):
        RocketModel.load(d)


def test_wrong_record_shape_and_bad_options_are_refused(fitted):
    model, M, *_ = fitted
    with pytest.raises(ValueError, match=r"\(1, 200\)"):
        model.predict(M[:3, :200])
    with pytest.raises(ValueError, match="transform"):
        RocketModel(transform="rocket")
    with pytest.raises(ValueError, match="C_grid"):
        RocketModel(C_grid=(0.1, 0))
    with pytest.raises(ValueError, match="validation_fraction"):
        RocketModel(validation_fraction=0.95)
    with pytest.raises(ValueError, match="not fitted"):
        RocketModel().predict(M[:2])


def test_ridge_path_from_one_eigendecomposition_equals_sklearn_ridge():
    from sklearn.linear_model import Ridge

    from pyecho.learn.rocket import _ridge_validation_mse

    rng = np.random.default_rng(0)
    F = rng.standard_normal((300, 40)).astype(np.float32)
    Y = F[:, :3] @ rng.standard_normal((3, 2)) + 0.1 * rng.standard_normal((300, 2)) + 5.0
    fit, val = np.arange(200), np.arange(200, 300)
    alphas = (0.1, 10.0, 1000.0)
    got = _ridge_validation_mse(F[fit], Y[fit], F[val], Y[val], alphas)
    for i, a in enumerate(alphas):
        want = ((Ridge(alpha=a).fit(F[fit], Y[fit]).predict(F[val]) - Y[val]) ** 2).mean(axis=0)
        np.testing.assert_allclose(got[i], want, rtol=1e-5)  # float32 features

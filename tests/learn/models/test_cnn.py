"""The multitask 1-D CNN: shapes, learning, early stopping, determinism, saving without pickle."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, r2_score

from pyecho.learn.cnn import CONFIG_FILE, WEIGHTS_FILE, EchoCNN, LossWeights
from pyecho.learn.inputs import KERNEL_CLASSES, EchoTargets, InputView, ModelFileError
from tests.learn.test_inputs import make_learnable_echoes

#: a network small enough to train in seconds on one thread
TINY = dict(view=InputView(decimate=2), widths=(8, 16), kernel_size=5, pool_bins=4, hidden=16, dropout=0.0,
            batch_size=32, device="cpu", n_threads=1)


@pytest.fixture(scope="module")
def data():
    M, tg = make_learnable_echoes(300, n_samples=240, seed=5)
    return M, tg, np.arange(240), np.arange(240, 300)


@pytest.fixture(scope="module")
def fitted(data):
    M, tg, train, _ = data
    return EchoCNN(**TINY, learning_rate=3e-3, max_epochs=25, patience=6, random_state=0).fit(M[train], tg.take(train))


def test_learns_a_trivially_learnable_problem(data, fitted):
    M, tg, _, test = data
    pred = fitted.predict(M[test])
    assert pred.kernel_proba.shape == (60, len(KERNEL_CLASSES)) and pred.W.shape == (60,)
    np.testing.assert_allclose(pred.kernel_proba.sum(axis=1), 1.0, atol=1e-12)
    assert f1_score(tg.kernel[test], pred.kernel, average="macro") > 0.9  # chance: 1/3
    assert r2_score(tg.W[test], pred.W) > 0.8
    h = fitted.history_
    assert h[-1].val_loss < h[0].val_loss and 1 <= fitted.best_epoch_ <= len(h)


def test_multi_angle_records_give_one_channel_set_per_angle(data):
    M, tg, train, test = data
    M2 = np.stack([M, M.conj()], axis=1)  # (B, 2, T)
    model = EchoCNN(**TINY, max_epochs=1).fit(M2[train[:60]], tg.take(train[:60]))
    assert model.network_.x_mean.shape == (2 * 3, 120)
    assert model.predict(M2[test]).kernel_proba.shape == (60, 3)
    with pytest.raises(ValueError, match=r"\(1, 240\).*\(2, 240\)"):
        model.predict(M[test])


def test_early_stopping_stops_and_keeps_the_best_epoch():
    """Labels that are noise: the validation loss stops improving, training stops before max_epochs."""
    M, tg = make_learnable_echoes(90, n_samples=120, seed=7)
    rng = np.random.default_rng(0)
    shuffled = EchoTargets(kernel=rng.permutation(tg.kernel), W=rng.permutation(tg.W), L=tg.L,
                           alpha_xy=tg.alpha_xy, alpha_z=tg.alpha_z)
    model = EchoCNN(**TINY, learning_rate=1e-2, max_epochs=60, patience=2).fit(M, shuffled)
    h = model.history_
    assert model.stopped_early_ and len(h) < 60
    assert len(h) == model.best_epoch_ + 2
    assert min(r.val_loss for r in h) == h[model.best_epoch_ - 1].val_loss


def test_fit_is_seeded_and_deterministic(data):
    M, tg, train, test = data
    runs = [EchoCNN(**TINY, max_epochs=2, random_state=s).fit(M[train[:90]], tg.take(train[:90])).predict(M[test])
            for s in (1, 1, 2)]
    np.testing.assert_array_equal(runs[0].kernel_proba, runs[1].kernel_proba)
    np.testing.assert_array_equal(runs[0].W, runs[1].W)
    assert not np.array_equal(runs[0].kernel_proba, runs[2].kernel_proba)


def test_noise_augmentation_trains_and_leaves_the_input_alone(data):
    M, tg, train, test = data
    before = M.copy()
    model = EchoCNN(**TINY, max_epochs=2, noise_snr_choices=(np.inf, 50.0)).fit(M[train], tg.take(train))
    np.testing.assert_array_equal(M, before)
    clean = EchoCNN(**TINY, max_epochs=2).fit(M[train], tg.take(train))
    assert model.history_[0].train_loss != clean.history_[0].train_loss


def test_save_load_round_trip_gives_identical_predictions(data, fitted, tmp_path):
    M, _, _, test = data
    d = fitted.save(tmp_path / "cnn")
    assert sorted(p.name for p in d.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    state = torch.load(d / WEIGHTS_FILE, weights_only=True)  # tensors only: no pickle of objects
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    cfg = json.loads((d / CONFIG_FILE).read_text())
    assert cfg["classes"] == list(KERNEL_CLASSES) and cfg["view"] == TINY["view"].to_dict()
    loaded = EchoCNN.load(d, device="cpu")
    a, b = fitted.predict(M[test]), loaded.predict(M[test])
    np.testing.assert_array_equal(a.kernel_proba, b.kernel_proba)
    np.testing.assert_array_equal(a.regression(), b.regression())


@pytest.mark.parametrize("change, match", [
    (lambda c: {**c, "pyecho_version": "0.0.1"}, r"cnn\.json: pyecho_version is '0\.0\.1'"),
    (lambda c: {**c, "classes": ["power", "gaussian", "rkky"]}, "classes"),
    (lambda c: {**c, "architecture": {**c["architecture"], "widths": [8, 32]}}, r"cnn\.pt: does not match cnn\.json"),
    (lambda c: {k: v for k, v in c.items() if k != "target_scaler"}, "incomplete or invalid"),
])
def test_a_model_from_another_version_or_config_is_refused(fitted, tmp_path, change, match):
    d = fitted.save(tmp_path / "m")
    cfg = json.loads((d / CONFIG_FILE).read_text())
    (d / CONFIG_FILE).write_text(json.dumps(change(cfg)))
    with pytest.raises(ModelFileError, match=match) as err:
        EchoCNN.load(d)
    assert "\n" not in str(err.value)


def test_bad_options_are_refused_with_the_option_name():
    for kwargs, match in [(dict(kernel_size=4), "kernel_size"), (dict(widths=()), "widths"),
                          (dict(device="tpu"), "device"), (dict(dropout=1.0), "dropout"),
                          (dict(noise_snr_choices=(50,), noise_snr_range=(10, 100)), "at most one"),
                          (dict(noise_snr_choices=(0.0,)), "noise_snr_choices"),
                          (dict(noise_snr_range=(100, 10)), "noise_snr_range"),
                          (dict(batch_size=1), "batch_size"), (dict(view="reim"), "view")]:
        with pytest.raises(ValueError, match=match):
            EchoCNN(**kwargs)
    with pytest.raises(ValueError, match="loss_weights"):
        LossWeights(kernel=0, W=0, L=0, alpha_xy=0, alpha_z=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            EchoCNN(device="cuda")

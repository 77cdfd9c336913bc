"""The multitask 1-D CNN on records of two measurements of different lengths (one branch
each): shapes, learning, early stopping, determinism, saving without pickle."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, r2_score

from pyecho.data.records import NoisyRecords
from pyecho.learn.models.cnn import CONFIG_FILE, WEIGHTS_FILE, EchoCNN, LossWeights
from pyecho.learn.models.inputs import InputView
from pyecho.learn.models.model_files import ModelFileError
from pyecho.learn.models.targets import KERNEL_CLASSES, EchoTargets
from tests.learn.models.learnable import (ONE_MEASUREMENT, TWO_MEASUREMENTS, make_learnable_echoes,
                                          most_probable_kernel, rows_of)

#: a network small enough to train in seconds on one thread; 6 dead samples after every pulse
VIEW = InputView(decimate=2, dead_time_us=0.96)
TINY = dict(view=VIEW, widths=(8, 16), kernel_size=5, pool_bins=4, hidden=16, dropout=0.0, batch_size=32,
            device="cpu", n_threads=1)


@pytest.fixture(scope="module")
def data():
    records, tg, grid = make_learnable_echoes(300, grid=TWO_MEASUREMENTS, seed=5)
    assert grid.lengths == (300, 250)
    return records, tg, grid, np.arange(240), np.arange(240, 300)


@pytest.fixture(scope="module")
def fitted(data):
    records, tg, grid, train, _ = data
    return EchoCNN(**TINY, learning_rate=3e-3, max_epochs=25, patience=6, random_state=0).fit(
        rows_of(records, train), tg.take(train), grid)


def test_one_branch_per_measurement(data, fitted):
    records, _, grid, _, test = data
    T = VIEW.n_timepoints(grid)
    # pulses at (0, 100) and (0, 50, 150): 3 + 3 and 3 + 3 + 3 dead blocks of 2 samples dropped
    assert T == (150 - 6, 125 - 9)
    branches = fitted.network_.branches
    assert len(branches) == 2
    assert [tuple(b.x_mean.shape) for b in branches] == [(3, T[0]), (3, T[1])]
    # both branches are read: changing either measurement changes the prediction
    test_records = rows_of(records, test)
    base = fitted.predict(test_records).kernel_proba
    for k in range(2):
        moved = tuple(R * (1.5 if j == k else 1.0) * np.exp(0.5j * np.arange(R.shape[1]) / R.shape[1] * (j == k))
                      for j, R in enumerate(test_records))
        assert np.abs(fitted.predict(moved).kernel_proba - base).max() > 1e-4


def test_learns_a_trivially_learnable_problem(data, fitted):
    records, tg, _, _, test = data
    pred = fitted.predict(rows_of(records, test))
    assert pred.kernel_proba.shape == (60, len(KERNEL_CLASSES)) and pred["W"].shape == (60,)
    np.testing.assert_allclose(pred.kernel_proba.sum(axis=1), 1.0, atol=1e-12)
    assert f1_score(tg.kernel[test], most_probable_kernel(pred), average="macro") > 0.9  # chance: 1/3
    assert r2_score(tg["W"][test], pred["W"]) > 0.8
    h = fitted.history_
    assert h[-1].val_loss < h[0].val_loss and 1 <= fitted.best_epoch_ <= len(h)
    assert h[fitted.best_epoch_ - 1].val_loss == min(r.val_loss for r in h)


def test_records_of_another_grid_are_refused(data, fitted):
    records, _, _, _, test = data
    with pytest.raises(ValueError, match=r"lengths \[300\].*T = \[300, 250\]"):
        fitted.predict(rows_of(records, test)[:1])
    one, tg, _ = make_learnable_echoes(20, grid=ONE_MEASUREMENT)
    with pytest.raises(ValueError, match=r"lengths \[300\]"):
        EchoCNN(**TINY, max_epochs=1).fit(one, tg, TWO_MEASUREMENTS)


def test_early_stopping_stops_and_keeps_the_best_epoch():
    """Labels that are noise: the validation loss stops improving, training stops before max_epochs."""
    records, tg, grid = make_learnable_echoes(90, grid=TWO_MEASUREMENTS, seed=7)
    rng = np.random.default_rng(0)
    shuffled = EchoTargets(kernel=rng.permutation(tg.kernel), values={"W": rng.permutation(tg["W"]), "L": tg["L"]})
    model = EchoCNN(**TINY, learning_rate=1e-2, max_epochs=60, patience=2).fit(records, shuffled, grid)
    h = model.history_
    assert model.stopped_early_ and len(h) < 60
    assert len(h) == model.best_epoch_ + 2
    assert min(r.val_loss for r in h) == h[model.best_epoch_ - 1].val_loss


def test_fit_is_seeded_and_deterministic(data):
    records, tg, grid, train, test = data
    rows = train[:90]
    runs = [EchoCNN(**TINY, max_epochs=2, random_state=s).fit(rows_of(records, rows), tg.take(rows), grid)
            .predict(rows_of(records, test)) for s in (1, 1, 2)]
    np.testing.assert_array_equal(runs[0].kernel_proba, runs[1].kernel_proba)
    np.testing.assert_array_equal(runs[0]["W"], runs[1]["W"])
    assert not np.array_equal(runs[0].kernel_proba, runs[2].kernel_proba)


def test_noise_augmentation_trains_and_leaves_the_input_alone(data):
    records, tg, grid, train, _ = data
    rows = rows_of(records, train)
    before = tuple(R.copy() for R in rows)
    noisy = EchoCNN(**TINY, max_epochs=2, noise_snr_choices=(np.inf, 20.0)).fit(rows, tg.take(train), grid)
    for R, R0 in zip(rows, before):
        np.testing.assert_array_equal(R, R0)
    clean = EchoCNN(**TINY, max_epochs=2).fit(rows, tg.take(train), grid)
    # same seed, same split, same initialisation: only the noisy training rows differ
    assert noisy.history_[0].train_loss != clean.history_[0].train_loss
    # noise is redrawn on clean rows only: rows that carry noise already are refused, not noised twice
    already = NoisyRecords(records, train, np.full(len(train), 50.0), np.arange(len(train)), seed=1)
    with pytest.raises(ValueError, match="redraws the noise of clean records"):
        EchoCNN(**TINY, max_epochs=1, noise_snr_choices=(20.0,)).fit(already, tg.take(train), grid)


def test_loss_weights_choose_what_is_learned(data):
    """With the regression weight 0 the regression head is never trained: its predictions stay
    as poor as its random initialisation."""
    records, tg, grid, train, test = data
    rows, test_rows = rows_of(records, train), rows_of(records, test)
    kernel_only = EchoCNN(**TINY, max_epochs=6, learning_rate=3e-3,
                          loss_weights=LossWeights(kernel=1.0, regression=0.0)).fit(rows, tg.take(train), grid)
    both = EchoCNN(**TINY, max_epochs=6, learning_rate=3e-3).fit(rows, tg.take(train), grid)
    assert r2_score(tg["W"][test], kernel_only.predict(test_rows)["W"]) < 0.3
    assert r2_score(tg["W"][test], both.predict(test_rows)["W"]) > 0.6


def test_save_load_round_trip_gives_identical_predictions(data, fitted, tmp_path):
    records, _, grid, _, test = data
    d = fitted.save(tmp_path / "cnn")
    assert sorted(p.name for p in d.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    state = torch.load(d / WEIGHTS_FILE, weights_only=True)  # tensors only: no pickle of objects
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    cfg = json.loads((d / CONFIG_FILE).read_text())
    assert cfg["classes"] == list(KERNEL_CLASSES) and cfg["view"] == VIEW.to_dict()
    assert cfg["architecture"]["n_timepoints"] == list(VIEW.n_timepoints(grid))
    loaded = EchoCNN.load(d, device="cpu")
    assert loaded.grid_ == grid and loaded.targets_ == fitted.targets_
    a, b = fitted.predict(rows_of(records, test)), loaded.predict(rows_of(records, test))
    np.testing.assert_array_equal(a.kernel_proba, b.kernel_proba)
    for t in a.targets:
        np.testing.assert_array_equal(a[t], b[t])


@pytest.mark.parametrize("change, match", [
    (lambda c: {**c, "pyecho_version": "0.0.1"}, r"cnn\.json: pyecho_version is '0\.0\.1'"),
    (lambda c: {**c, "classes": ["power", "gaussian", "rkky"]}, "classes"),
    (lambda c: {**c, "architecture": {**c["architecture"], "widths": [8, 32]}}, r"cnn\.pt: does not match cnn\.json"),
    (lambda c: {**c, "architecture": {**c["architecture"], "n_timepoints": [144]}}, r"cnn\.pt: does not match"),
    (lambda c: {k: v for k, v in c.items() if k != "target_scaler"}, "incomplete or invalid"),
    (lambda c: {k: v for k, v in c.items() if k != "grid"}, "incomplete or invalid"),
])
def test_a_model_from_another_version_or_config_is_refused(fitted, tmp_path, change, match):
    d = fitted.save(tmp_path / "m")
    cfg = json.loads((d / CONFIG_FILE).read_text())
    (d / CONFIG_FILE).write_text(json.dumps(change(cfg)))
    with pytest.raises(ModelFileError, match=match) as err:
        EchoCNN.load(d)
    assert "\n" not in str(err.value)


def test_bad_options_are_refused_with_the_option_name(data):
    records, tg, grid, *_ = data
    for kwargs, match in [(dict(kernel_size=4), "kernel_size"), (dict(widths=()), "widths"),
                          (dict(device="tpu"), "device"), (dict(dropout=1.0), "dropout"),
                          (dict(noise_snr_choices=(50,), noise_snr_range=(10, 100)), "at most one"),
                          (dict(noise_snr_choices=(0.0,)), "noise_snr_choices"),
                          (dict(noise_snr_range=(100, 10)), "noise_snr_range"),
                          (dict(batch_size=1), "batch_size"), (dict(view="reim"), "view"),
                          (dict(loss_weights=(1, 1)), "loss_weights")]:
        with pytest.raises(ValueError, match=match):
            EchoCNN(**kwargs)
    for kwargs in (dict(kernel=0, regression=0), dict(kernel=-1.0), dict(regression=float("nan"))):
        with pytest.raises(ValueError, match="loss_weights"):
            LossWeights(**kwargs)
    with pytest.raises(ValueError, match="not fitted"):
        EchoCNN().predict(records)
    with pytest.raises(ValueError, match="grid: got Protocol"):
        EchoCNN(**TINY).fit(records, tg, grid.protocol)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            EchoCNN(device="cuda")

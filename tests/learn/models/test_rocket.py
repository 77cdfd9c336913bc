"""MiniRocket features + linear heads: learning, the grouped validation split, saving without
pickle, refusing other versions and other grids."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, r2_score

from pyecho.learn.models.heads import fit_linear_heads, group_split
from pyecho.learn.models.inputs import InputView
from pyecho.learn.models.model_files import ModelFileError
from pyecho.learn.models.rocket import CONFIG_FILE, MODEL_FILE, RocketModel
from pyecho.learn.models.targets import KERNEL_CLASSES, EchoTargets
from pyecho.physics.protocol import Protocol, RecordGrid
from tests.learn.models.learnable import (ONE_MEASUREMENT, TWO_MEASUREMENTS, make_learnable_echoes,
                                          most_probable_kernel, rows_of)

N_KERNELS = 504  # 6 x 84: small and fast
VIEW = InputView(decimate=2, dead_time_us=0.96)  # 6 dead samples after every pulse


@pytest.fixture(scope="module")
def data():
    records, tg, grid = make_learnable_echoes(240, grid=TWO_MEASUREMENTS, seed=3)
    return records, tg, grid, np.arange(180), np.arange(180, 240)


@pytest.fixture(scope="module")
def fitted(data):
    records, tg, grid, train, _ = data
    model = RocketModel(view=VIEW, n_kernels=N_KERNELS, random_state=0)
    return model.fit(rows_of(records, train), tg.take(train), grid)


def test_learns_a_trivially_learnable_problem(data, fitted):
    records, tg, _, _, test = data
    pred = fitted.predict(rows_of(records, test))
    assert pred.kernel_proba.shape == (60, len(KERNEL_CLASSES)) and pred.targets == ("W", "L", "alpha_xy", "alpha_z")
    np.testing.assert_allclose(pred.kernel_proba.sum(axis=1), 1.0, atol=1e-12)
    assert f1_score(tg.kernel[test], most_probable_kernel(pred), average="macro") > 0.9  # chance: 1/3
    assert r2_score(tg["W"][test], pred["W"]) > 0.8
    assert fitted.features(rows_of(records, test)).shape == (60, fitted.n_features_)
    # one transform per measurement, the kernels shared out between them
    assert len(fitted.transforms_) == 2 and fitted.grid_ == TWO_MEASUREMENTS
    assert fitted.C_ in fitted.C_grid and set(fitted.ridge_alpha_.values()) <= set(fitted.ridge_alphas)


def test_no_transform_is_the_linear_baseline_on_the_view_itself(data, tmp_path):
    records, tg, grid, train, test = data
    view = InputView(channels="reim_abs", decimate=3)
    model = RocketModel(view=view, transform="none", random_state=0).fit(rows_of(records, train), tg.take(train),
                                                                          grid)
    assert model.n_features_ == 3 * (100 + 83)
    np.testing.assert_array_equal(model.features(rows_of(records, test)),
                                  view.flat(rows_of(records, test), grid))
    assert f1_score(tg.kernel[test], most_probable_kernel(model.predict(rows_of(records, test))), average="macro") > 0.9
    loaded = RocketModel.load(model.save(tmp_path / "linear"))
    np.testing.assert_array_equal(loaded.predict(rows_of(records, test)).kernel_proba,
                                  model.predict(rows_of(records, test)).kernel_proba)


# -- the grouped validation split -------------------------------------------------------------
def test_group_split_keeps_every_group_on_one_side():
    rng = np.random.default_rng(0)
    groups = np.repeat(rng.permutation(300), 4)  # a clean row and 3 noisy copies, rows interleaved below
    order = rng.permutation(groups.size)
    groups = groups[order]
    kernel_of_group = rng.integers(0, 3, 300)
    fit, val = group_split(kernel_of_group[groups], groups, 0.2, seed=1)
    assert np.intersect1d(fit, val).size == 0 and np.union1d(fit, val).size == groups.size
    assert not set(groups[fit]) & set(groups[val])
    assert len(set(groups[val])) == 60  # 20 % of the groups, each whole
    # stratified by the group's kernel: each kernel's share of the validation groups is its share of all
    for c in range(3):
        share = np.mean(kernel_of_group == c)
        assert abs(np.mean(kernel_of_group[np.unique(groups[val])] == c) - share) < 0.02


#: the view of the grouped-split tests: Re and Im of 100 blocks of 3 samples
GROUP_VIEW = InputView(channels="reim", decimate=3)


def copies_with_random_labels(n_groups: int = 150, copies: int = 3, seed: int = 0):
    """Records whose labels are noise, ``copies`` near-identical copies of each: a validation row
    whose copy was fitted is predicted from memory, a fresh one cannot be predicted at all.
    Seen through :data:`GROUP_VIEW` they have 200 features, more than the ~120 samples a fit
    sees (so a weak penalty memorises them) and few enough that it then fails on new ones."""
    rng = np.random.default_rng(seed)
    T = ONE_MEASUREMENT.lengths[0]
    base = rng.standard_normal((n_groups, T)) + 1j * rng.standard_normal((n_groups, T))
    base[:, :8] = 1.0  # the phase reference: a steady start
    groups = np.repeat(np.arange(n_groups), copies)
    jitter = rng.standard_normal((groups.size, T)) + 1j * rng.standard_normal((groups.size, T))
    records = (base[groups] + 0.01 * jitter,)
    kernel = np.array(KERNEL_CLASSES)[rng.permutation(np.arange(n_groups) % 3)]
    targets = EchoTargets(kernel=kernel[groups], values={"W": rng.uniform(0, 1, n_groups)[groups]})
    return records, targets, groups


def test_groups_stop_copies_from_choosing_the_penalties():
    """Without groups a row's copies sit on both sides of the validation split: memorising
    looks good, and the weakest penalties win. With groups the validation sees only unseen
    samples, whose labels are noise: the strongest penalties win."""
    records, targets, groups = copies_with_random_labels()
    options = dict(view=GROUP_VIEW, transform="none", C_grid=(1e-4, 1e-2, 1.0),
                   ridge_alphas=(1e-2, 1.0, 1e2, 1e4, 1e6), random_state=0)
    leaky = RocketModel(**options).fit(records, targets, ONE_MEASUREMENT)
    honest = RocketModel(**options).fit(records, targets, ONE_MEASUREMENT, groups=groups)
    assert leaky.ridge_alpha_["W"] <= 1.0 and honest.ridge_alpha_["W"] >= 1e4
    assert leaky.C_ == 1.0 and honest.C_ == 1e-4
    # the same through the heads alone, on the features
    F = GROUP_VIEW.flat(records, ONE_MEASUREMENT)
    heads = fit_linear_heads(F, targets, groups=groups, C_grid=(1e-4, 1.0), ridge_alphas=(1e-2, 1e6))
    assert heads.C == 1e-4 and heads.ridge_alpha == {"W": 1e6}
    with pytest.raises(ValueError, match=r"groups: expected 450 values"):
        RocketModel(**options).fit(records, targets, ONE_MEASUREMENT, groups=groups[:10])


# -- saving and loading -------------------------------------------------------------------------
def test_save_load_round_trip_gives_identical_predictions(data, fitted, tmp_path):
    records, _, _, _, test = data
    d = fitted.save(tmp_path / "rocket")
    assert sorted(p.name for p in d.iterdir()) == [CONFIG_FILE, MODEL_FILE]
    loaded = RocketModel.load(d)
    assert loaded.grid_ == fitted.grid_ and loaded.targets_ == fitted.targets_ and loaded.view == VIEW
    a, b = fitted.predict(rows_of(records, test)), loaded.predict(rows_of(records, test))
    np.testing.assert_array_equal(a.kernel_proba, b.kernel_proba)
    for t in a.targets:
        np.testing.assert_array_equal(a[t], b[t])


def test_a_model_from_another_version_is_refused(fitted, tmp_path):
    d = fitted.save(tmp_path / "old")
    cfg = json.loads((d / CONFIG_FILE).read_text())
    (d / CONFIG_FILE).write_text(json.dumps({**cfg, "pyecho_version": "0.0.1"}))
    with pytest.raises(ModelFileError, match=r"rocket\.json: pyecho_version is '0\.0\.1'"):
        RocketModel.load(d)
    (d / CONFIG_FILE).write_text(json.dumps({k: v for k, v in cfg.items() if k != "grid"}))
    with pytest.raises(ModelFileError, match="incomplete or invalid config"):
        RocketModel.load(d)


def test_a_model_file_with_untrusted_types_is_refused(fitted, tmp_path):
    import skops.io as sio

    d = fitted.save(tmp_path / "evil")
    sio.dump({"transform": fitted.transforms_, "heads": fitted.heads_.arrays(), "extra": InputView()}, d / MODEL_FILE)
    with pytest.raises(ModelFileError, match="not trusted: pyecho.learn.models.inputs.InputView"):
        RocketModel.load(d)


# -- refusals --------------------------------------------------------------------------------
def test_records_on_another_grid_are_refused_with_one_error_naming_the_shapes(data, fitted):
    records, *_ = data
    shorter = (records[0][:3], records[1][:3, :200])
    with pytest.raises(ValueError) as err:
        fitted.predict(shorter)
    msg = str(err.value)
    assert "\n" not in msg and "[300, 200]" in msg and "T = [300, 250]" in msg and TWO_MEASUREMENTS.protocol.text in msg
    with pytest.raises(ValueError, match=r"lengths \[300\].*T = \[300, 250\]"):
        fitted.predict(records[0][:3])  # one measurement of two
    other, tg, other_grid = make_learnable_echoes(30, grid=RecordGrid(Protocol.parse("hahn@90/16"), 0.16))
    with pytest.raises(ValueError, match=r"lengths \[300\]"):
        RocketModel(view=VIEW, n_kernels=N_KERNELS).fit(other, tg, TWO_MEASUREMENTS)


def test_bad_options_and_inputs_are_refused(data):
    records, tg, grid, *_ = data
    for kwargs, match in [(dict(transform="rocket"), "transform"), (dict(C_grid=(0.1, 0)), "C_grid"),
                          (dict(ridge_alphas=()), "ridge_alphas"),
                          (dict(validation_fraction=0.95), "validation_fraction"),
                          (dict(n_kernels=0), "n_kernels"), (dict(view="reim"), "view")]:
        with pytest.raises(ValueError, match=match):
            RocketModel(**kwargs)
    with pytest.raises(ValueError, match="not fitted"):
        RocketModel().predict(rows_of(records, np.arange(2)))
    with pytest.raises(ValueError, match="grid: got Protocol"):
        RocketModel().fit(records, tg, grid.protocol)
    with pytest.raises(ValueError, match="targets: 10 rows for 240 records"):
        RocketModel().fit(records, tg.take(np.arange(10)), grid)
    no_rkky = np.flatnonzero(tg.kernel != "rkky")
    with pytest.raises(ValueError, match="no training rows of kernel rkky"):
        RocketModel().fit(rows_of(records, no_rkky), tg.take(no_rkky), grid)

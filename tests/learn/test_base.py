"""LearnData: the records of a protocol, the 90° Hahn echo the paper's route reads, the targets."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from pyecho.data.store import DatasetError
from pyecho.learn.base import LearnData, Split, Target
from pyecho.learn.paper.features import build_features
from pyecho.physics.protocol import Measurement, Protocol

from .conftest import DT, N_TAU


def _with_protocol(synthetic, protocol: str, n_measurements_extra: int = 0):
    """The synthetic samples measured by ``protocol``: records of the right lengths, built from
    the synthetic Hahn echo so that a Hahn prefix is recognisable."""
    p = Protocol.parse(protocol, default_tau_us=N_TAU * DT)
    M = synthetic.records[0]
    records = tuple(np.concatenate([M * (k + 1), np.zeros((M.shape[0], T - M.shape[1]), M.dtype)], axis=1)
                    for k, T in enumerate(p.n_samples(DT)))
    return SimpleNamespace(**{**vars(synthetic), "records": records, "protocol": p})


def test_the_paper_route_reads_the_90_degree_hahn_echo_wherever_it_is(synthetic):
    ld = LearnData.from_dataset(synthetic)
    assert ld.hahn_source == (0, 3 * N_TAU) and np.array_equal(ld.M, synthetic.records[0])
    f = build_features(ld, 120)
    assert f.tables.pointwise.shape == (90, 120) and f.tables.polynomial.shape == (90, 76)
    # a train at 90 degrees begins with the Hahn echo: the route cuts it out of the train
    train = LearnData.from_dataset(_with_protocol(synthetic, "hahn@45,cpmg:2@90"))
    assert train.hahn_source == (1, 3 * N_TAU)
    np.testing.assert_array_equal(train.M, 2 * synthetic.records[0])
    assert train.echo_index == 2 * N_TAU - 1 and train.hahn_measurement == Measurement("hahn", math.pi / 2, N_TAU * DT)
    np.testing.assert_array_equal(build_features(train, 120).tables.pointwise, build_features(train.hahn_only(), 120)
                                  .tables.pointwise)
    assert train.hahn_only().protocol.text == f"hahn@90/{N_TAU * DT:g}"
    assert train.select([1]).protocol.text == f"cpmg:2@90/{N_TAU * DT:g}"


def test_a_protocol_without_a_90_degree_hahn_echo_is_refused_by_name(synthetic):
    for protocol in ("hahn@45", "cp:2@90"):  # CP's refocusing pulses are about x: not a Hahn echo
        ld = LearnData.from_dataset(_with_protocol(synthetic, protocol))
        with pytest.raises(DatasetError, match="holds no Hahn echo at 90 degrees"):
            ld.M


def test_records_that_do_not_match_the_protocol_are_refused(synthetic):
    wrong = SimpleNamespace(**{**vars(synthetic), "records": (synthetic.records[0][:, :-1],)})
    with pytest.raises(DatasetError, match="needs \\(B, T\\) with T = \\[750\\]"):
        LearnData.from_dataset(wrong)


def test_t2_is_a_target_only_where_it_varies(synthetic):
    assert LearnData.from_dataset(synthetic).targets == (Target.W, Target.L, Target.ALPHA_XY, Target.ALPHA_Z)
    n = synthetic.labels.height
    varied = synthetic.labels.with_columns(t2_us=np.geomspace(300, 3000, n))
    assert Target.T2 in LearnData.from_dataset(SimpleNamespace(**{**vars(synthetic), "labels": varied})).targets
    fixed = synthetic.labels.with_columns(t2_us=np.full(n, 500.0))
    assert Target.T2 not in LearnData.from_dataset(SimpleNamespace(**{**vars(synthetic), "labels": fixed})).targets


def test_learn_data_rejects_too_few_samples_or_a_missing_kernel(synthetic):
    few = SimpleNamespace(**{**vars(synthetic), "records": (synthetic.records[0][:19],), "labels": synthetic.labels[:19]})
    with pytest.raises(DatasetError, match="19 samples; learning needs at least 20"):
        LearnData.from_dataset(few)
    keep = synthetic.labels["kernel"].to_numpy() != "rkky"
    no_rkky = SimpleNamespace(**{**vars(synthetic), "records": (synthetic.records[0][keep],),
                                 "labels": synthetic.labels.filter(keep)})
    with pytest.raises(DatasetError, match="no 'rkky' echoes"):
        LearnData.from_dataset(no_rkky)


def test_a_split_subsample_keeps_its_test_rows_among_the_test_rows_stratified():
    kernel = np.array(["gaussian", "power", "rkky"] * 100)
    split = Split(train=np.arange(60, 300), test=np.arange(60), seed=3, test_size=0.2)
    assert split.subsample(kernel, 300) is None
    rows = split.subsample(kernel, 150)
    assert len(rows) == 150 and np.all(np.diff(rows) > 0)
    sub = split.restrict(rows)
    np.testing.assert_array_equal(rows[sub.test], rows[rows < 60])  # the test rows kept are test rows
    assert sub.n_test == 30 and sub.n_train == 120 and sub.seed == 3
    counts = np.unique(kernel[rows[sub.train]], return_counts=True)[1]
    assert counts.max() - counts.min() <= 1  # stratified by kernel

"""Measurement protocols (pyecho.physics.protocol): text form, prefixes and the record grid."""
import math

import numpy as np
import pytest

from pyecho import simulate
from pyecho.physics.params import EchoParams
from pyecho.physics.protocol import (
    DEFAULT_TAU_US,
    HAHN_90,
    Measurement,
    Protocol,
    ProtocolError,
    RecordGrid,
    SimulatedRecord,
)

DT = 0.16
#: n_tau = round(1 / 0.16) = 6 steps per tau
MIXED = "hahn@90/1,cpmg:2@90/1,hahn@60/1,cp:2@90/1,cp:4@90/1,cpmg:4@90/2"


def test_measurement_text_and_fields():
    m = Measurement.parse("cpmg:8@45/50")
    assert (m.sequence, m.tau_us, m.n_refocusing) == ("cpmg:8", 50.0, 8)
    assert math.isclose(m.theta, math.pi / 4) and math.isclose(m.theta_deg, 45.0)
    assert m.text == "cpmg:8@45/50"
    assert Measurement.parse("hahn@90") == HAHN_90 == Measurement("hahn", math.pi / 2, DEFAULT_TAU_US)
    assert Measurement.parse(" hahn@90/7 ").tau_us == 7.0
    assert Measurement.parse("hahn@90", default_tau_us=20.0).tau_us == 20.0
    assert Measurement.from_dict(m.to_dict()) == m
    # (2N + 1) round(tau / dt) samples
    assert m.n_samples(DT) == 17 * round(50 / DT) and m.duration_us(DT) == pytest.approx(17 * 312 * DT)
    assert HAHN_90.n_samples(DT) == 1875


def test_measurement_applies_to_a_sample():
    params = EchoParams(kernel="power", kernel_param=2.0, alpha_xy=0.05, lattice=6, t2_us=40.0)
    m = Measurement.parse("cp:3@60/5")
    measured = m.apply(params)
    assert (measured.sequence, measured.tau_us, measured.t2_us, measured.kernel) == ("cp:3", 5.0, 40.0, "power")
    assert math.isclose(measured.theta, math.pi / 3)
    assert Measurement.of(measured) == m and measured.n_samples == m.n_samples(params.dt_us)


@pytest.mark.parametrize("theta", [1.5708, 1.57, math.pi / 2, math.radians(90.04), math.radians(89.96)])
def test_an_angle_names_its_measurement_to_a_tenth_of_a_degree(theta):
    """1.5708 rad (90.0002 degrees) and 1.57 rad (89.954 degrees), typed for 90 degrees, are
    hahn@90: equal, hashed alike, prefixes of the 90-degree trains, on a 90-degree model's grid."""
    m = Measurement("hahn", theta)
    assert m == HAHN_90 and hash(m) == hash(HAHN_90) and m.theta == math.pi / 2
    assert m.text == "hahn@90/100" and Protocol.parse(m.text) == Protocol((m,))
    assert m.is_prefix_of(Measurement("cpmg:3", theta)) and HAHN_90.is_prefix_of(Measurement("cpmg:3", theta))
    assert Protocol((Measurement("cpmg:3", 1.5708),)).covering(HAHN_90) == 0
    assert RecordGrid(Protocol((m,)), DT).mismatches(RecordGrid(Protocol((HAHN_90,)), DT)) == ()
    # the sample keeps the angle it was given; the measurement it names is read to 0.1 degree
    params = EchoParams(theta=theta)
    assert params.theta == theta and Measurement.of(params) == HAHN_90


def test_angles_a_tenth_of_a_degree_apart_are_different_measurements():
    assert Measurement.parse("hahn@89.9") != HAHN_90 and Measurement.parse("hahn@89.9").text == "hahn@89.9/100"
    assert Measurement("hahn", 0.7854).text == "hahn@45/100" and Measurement("hahn", 0.7854).theta == math.pi / 4
    # angles written in whole tenths of a degree keep the value datasets and saved models hold
    for deg in (75, 60, 45, 30, 120, 89.9, 12.5):
        assert Measurement.parse(f"hahn@{deg}").theta == math.radians(deg)
    grid = RecordGrid(Protocol.parse("hahn@90/1"), DT)
    assert grid.mismatches(RecordGrid(Protocol.parse("hahn@89.9/1"), DT)) == (
        "measurement 0: hahn@89.9/1 != model hahn@90/1",)


@pytest.mark.parametrize("text, needle", [
    ("hahn", "SEQUENCE@ANGLE_DEG"),
    ("@90", "SEQUENCE@ANGLE_DEG"),
    ("hahn@", "SEQUENCE@ANGLE_DEG"),
    ("hahn@x", "must be numbers"),
    ("hahn@90/y", "must be numbers"),
    ("hahn@0", "(0, 180)"),
    ("hahn@180", "(0, 180)"),
    ("hahn@0.04", "(0, 180)"),  # read to 0.1 degree: 0
    ("hahn@90/0", "tau_us"),
    ("hahn@90/nan", "tau_us"),
    ("cpmg:0@90", "cpmg:0"),
    ("spin@90", "spin"),
])
def test_bad_measurements_are_refused(text, needle):
    with pytest.raises(ProtocolError) as info:
        Measurement.parse(text)
    assert needle in str(info.value) and str(info.value).startswith("protocol: ")


def test_protocol_parse_of_and_text_round_trip():
    p = Protocol.parse(MIXED)
    assert len(p) == 6 and p.text == MIXED and Protocol.parse(p.text) == p
    assert [m.sequence for m in p] == ["hahn", "cpmg:2", "hahn", "cp:2", "cp:4", "cpmg:4"]
    assert Protocol.of(MIXED) == Protocol.of(MIXED.split(",")) == Protocol.of(p) == Protocol.from_list(p.to_list()) == p
    assert Protocol.of(HAHN_90) == Protocol((HAHN_90,))
    assert Protocol.parse("cpmg:8@90,hahn@75", default_tau_us=50).text == "cpmg:8@90/50,hahn@75/50"
    assert Protocol.parse("hahn@90,hahn@75").thetas == pytest.approx((math.pi / 2, math.radians(75)))
    assert p.index(Measurement.parse("cp:2@90/1")) == 3
    with pytest.raises(ProtocolError, match="is not one of"):
        p.index(Measurement.parse("cp:8@90/1"))
    assert p.n_samples(DT) == (18, 30, 18, 30, 54, 108)
    assert p.duration_us(DT) == pytest.approx(sum(p.n_samples(DT)) * DT)


@pytest.mark.parametrize("value, needle", [
    ("", "give SEQUENCE"),
    ("   ", "give SEQUENCE"),
    ([], "one or more"),
    ("hahn@90,hahn@90/100", "given twice"),
    ("hahn@90,,hahn@75", "SEQUENCE@ANGLE_DEG"),
    (3.0, "float"),
])
def test_bad_protocols_are_refused(value, needle):
    with pytest.raises(ProtocolError, match=needle):
        Protocol.of(value)


def test_prefixes():
    m = Measurement.parse
    assert m("hahn@90/1").is_prefix_of(m("cpmg:2@90/1"))
    assert m("cpmg:2@90/1").is_prefix_of(m("cpmg:4@90/1"))
    assert m("cp:2@90/1").is_prefix_of(m("cp:4@90/1"))
    assert m("cpmg:4@90/1").is_prefix_of(m("cpmg:4@90/1"))  # itself
    assert not m("cpmg:4@90/1").is_prefix_of(m("cpmg:2@90/1"))  # longer
    assert not m("hahn@90/1").is_prefix_of(m("cp:2@90/1"))  # Hahn's refocusing pulse is about y, CP's about x
    assert not m("cp:2@90/1").is_prefix_of(m("cpmg:4@90/1"))
    assert not m("hahn@90/1").is_prefix_of(m("cpmg:2@60/1"))  # another angle
    assert not m("hahn@90/1").is_prefix_of(m("cpmg:2@90/2"))  # another tau


def test_simulated_reads_shorter_trains_from_longer_ones():
    p = Protocol.parse(MIXED)
    assert p.simulated(DT) == (
        SimulatedRecord(0, 1, 18),  # hahn@90/1 from cpmg:2@90/1
        SimulatedRecord(1, 1, 30),
        SimulatedRecord(2, 2, 18),  # another angle: its own
        SimulatedRecord(3, 4, 30),  # cp:2 from cp:4
        SimulatedRecord(4, 4, 54),
        SimulatedRecord(5, 5, 108),  # another tau: its own
    )
    assert p.sources(DT) == (1, 2, 4, 5)
    assert Protocol.parse("hahn@90,hahn@75").sources(DT) == (0, 1)
    # the covering measurement, in protocol order
    assert p.covering(Measurement.parse("hahn@90/1")) == 0
    assert p.covering(Measurement.parse("cp:3@90/1")) == 4
    assert p.covering(Measurement.parse("cpmg:3@90/1")) is None


def test_the_90_degree_hahn_echo_is_found_at_the_protocols_own_tau():
    assert Protocol.parse("hahn@45/20,cpmg:4@90/20,hahn@90/20").hahn_90() == (1, Measurement.parse("hahn@90/20"))
    assert Protocol.parse("hahn@60/50,hahn@90/50").hahn_90() == (1, Measurement.parse("hahn@90/50"))
    assert Protocol.parse("hahn@60,cpmg:4@75").hahn_90() is None


def test_a_shorter_train_is_exactly_the_beginning_of_a_longer_one():
    """What Protocol.simulated relies on, checked on the reference engine."""
    base = EchoParams(kernel="gaussian", kernel_param=2.0, alpha_xy=0.2, alpha_z=0.1, lattice=6, tau_us=1.0,
                      dt_us=DT, linewidth_khz=40.0, t2_us=20.0)
    for short, long in (("hahn@90/1", "cpmg:3@90/1"), ("cpmg:2@70/1", "cpmg:3@70/1"), ("cp:1@90/1", "cp:3@90/1")):
        a, b = Measurement.parse(short), Measurement.parse(long)
        m_short = simulate(a.apply(base), seed=2, backend="numpy")
        m_long = simulate(b.apply(base), seed=2, backend="numpy")
        np.testing.assert_array_equal(m_long[:m_short.size], m_short, err_msg=f"{short} in {long}")
    # and a train that is not a prefix differs
    cp = simulate(Measurement.parse("cp:3@70/1").apply(base), seed=2, backend="numpy")
    cpmg = simulate(Measurement.parse("cpmg:3@70/1").apply(base), seed=2, backend="numpy")
    assert np.abs(cp[18:] - cpmg[18:]).max() > 1e-3


def test_record_grid():
    g = RecordGrid(MIXED, DT)
    assert g.protocol == Protocol.parse(MIXED) and g.lengths == (18, 30, 18, 30, 54, 108)
    np.testing.assert_allclose(g.times_us(1), DT * np.arange(1, 31))
    assert g.pulse_samples(0) == (0, 6) and g.echo_samples(0) == (11,)
    assert g.pulse_samples(1) == (0, 6, 18) and g.echo_samples(1) == (11, 23)
    assert g.pulse_samples(5) == (0, 12, 36, 60, 84) and g.echo_samples(5) == (23, 47, 71, 95)
    # echo tops at 2 tau, 4 tau, ... on the step grid (tau = round(2 / 0.16) = 12 steps); sample j is at (j + 1) dt
    assert [g.times_us(5)[j] for j in g.echo_samples(5)] == pytest.approx([2 * 12 * DT * j for j in (1, 2, 3, 4)])
    # the dead time after every pulse: round(0.5 / 0.16) = 3 samples
    assert np.flatnonzero(g.dead_mask(1, 0.5)).tolist() == [0, 1, 2, 6, 7, 8, 18, 19, 20]
    assert not g.dead_mask(1, 0.0).any()
    assert g.dead_mask(0, 100.0).all()
    assert RecordGrid.from_dict(g.to_dict()) == g
    with pytest.raises(ProtocolError, match="dt_us"):
        RecordGrid(MIXED, 0.0)


def test_record_grid_mismatches():
    g = RecordGrid(MIXED, DT)
    assert g.mismatches(RecordGrid(MIXED, DT)) == ()
    assert g.mismatches(RecordGrid(MIXED, DT * (1 + 1e-9))) == ()
    assert g.mismatches(RecordGrid("hahn@90/1", 0.2)) == (
        "dt_us 0.2 != model 0.16", f"1 measurement(s) != model 6 ({MIXED})")
    other = MIXED.replace("cpmg:4@90/2", "cpmg:4@90/3").replace("hahn@60/1", "hahn@61/1")
    assert RecordGrid(other, DT).mismatches(g) == ("measurement 2: hahn@60/1 != model hahn@61/1",
                                                   "measurement 5: cpmg:4@90/2 != model cpmg:4@90/3")

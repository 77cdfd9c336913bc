"""The dataset config: validation, presets, the protocol and reproducible per-sample draws."""
import math

import numpy as np
import pytest

from pyecho.data.sampling import (
    DESIGN_CANDIDATES,
    NUISANCE_PRIOR,
    PRESETS,
    ConfigError,
    DatasetConfig,
    draw_sample,
    draw_samples,
)
from pyecho.physics.params import EchoParams
from pyecho.physics.protocol import HAHN_90, Measurement, Protocol

#: T = 3 * round(1.0 / 0.16) = 18 samples
TINY = DatasetConfig(n_per_kernel=4, lattice=4, protocol="hahn@90/1", part_size=3)


def test_presets_follow_the_paper_protocol():
    paper, quick = PRESETS["paper"], PRESETS["quick"]
    assert (paper.n_per_kernel, paper.lattice, paper.dt_us) == (5000, 100, 0.16)
    assert paper.protocol == Protocol((HAHN_90,)) and paper.protocol.text == "hahn@90/100"
    assert paper.kernels == ("gaussian", "power", "rkky") and paper.n_total == 15000
    assert paper.record_lengths == (1875,) and paper.n_measurements == 1
    assert paper.w_range == (0.1, 0.3) and paper.alpha_xy_range == paper.alpha_z_range == (0.01, 0.1)
    assert (paper.xi_range, paper.p_range, paper.gamma_range) == ((8, 32), (1, 3), (13, 52))
    # the paper draws no nuisance
    assert (paper.t2_us, paper.t2_us_range, paper.gamma1_per_us_range, paper.center_khz_range) == (
        None, None, (0.0, 0.0), (0.0, 0.0))
    # quick differs only in size: same ranges and the paper's time grid
    assert quick.replace(n_per_kernel=5000, lattice=100, part_size=paper.part_size) == paper


def test_angles_and_design_presets():
    angles = PRESETS["angles"]
    assert angles.protocol.text == "hahn@90/100,hahn@75/100"
    assert angles.replace(protocol="hahn@90") == PRESETS["paper"]
    design = PRESETS["design"]
    assert design.protocol == Protocol.parse(DESIGN_CANDIDATES) and design.n_measurements == 21
    assert (design.t2_us_range, design.gamma1_per_us_range, design.center_khz_range) == (
        NUISANCE_PRIOR["t2_us_range"], NUISANCE_PRIOR["gamma1_per_us_range"], NUISANCE_PRIOR["center_khz_range"])
    assert (design.n_per_kernel, design.n_total) == (300, 900)
    # lengths: (2N + 1) round(tau / dt); hahn@90/100 is 1875, cpmg:32@90/25 is 65 * 156
    lengths = dict(zip((m.text for m in design.protocol), design.record_lengths))
    assert lengths["hahn@90/100"] == 1875 and lengths["cpmg:16@90/100"] == 33 * 625
    assert lengths["cpmg:32@90/25"] == 65 * 156
    # every Hahn echo and CPMG train at 90 degrees / 100 us is read from cpmg:16's simulation
    sources = design.protocol.sources(design.dt_us)
    assert design.protocol.index(Measurement.parse("cpmg:16@90")) in sources
    assert design.protocol.index(HAHN_90) not in sources


def test_protocol_is_given_as_text_list_or_object():
    text = "hahn@90/1,cpmg:2@90/1,hahn@60/1"
    as_text = TINY.replace(protocol=text)
    assert as_text.protocol == Protocol.parse(text) and as_text.n_measurements == 3
    assert as_text.record_lengths == (18, 30, 18)
    assert DatasetConfig(protocol=text.split(",")).protocol == as_text.protocol
    assert DatasetConfig(protocol=Protocol.parse(text)).protocol == as_text.protocol
    assert DatasetConfig(protocol=as_text.protocol.to_list()).protocol == as_text.protocol
    # a measurement without /TAU gets the default 100 us
    assert DatasetConfig(protocol="hahn@75").protocol[0] == Measurement("hahn", math.radians(75), 100.0)


def test_measured_and_echo_params_apply_each_measurement():
    cfg = TINY.replace(protocol="hahn@90/1,cpmg:2@45/2", t2_us=30.0)
    params, seed = draw_sample(cfg, 5)
    # a drawn sample comes measured by the protocol's first measurement
    assert (params.sequence, params.theta, params.tau_us) == ("hahn", math.pi / 2, 1.0)
    second = cfg.measured(params, 1)
    assert (second.sequence, second.tau_us) == ("cpmg:2", 2.0) and math.isclose(second.theta, math.pi / 4)
    # everything but the measurement is the sample's
    assert second.replace(sequence="hahn", theta=math.pi / 2, tau_us=1.0) == params
    assert cfg.measured(params, 0) == params
    assert second.n_samples == cfg.record_lengths[1] == 5 * round(2.0 / 0.16)
    with pytest.raises(IndexError):
        cfg.measured(params, 2)
    # echo_params: the experiment, the given measurement, carrier offset and nuisance overrides
    p = cfg.echo_params("power", 2.0, 0.05, 0.02, measurement=cfg.protocol[1], center_khz=0.3, gamma1_per_us=1e-4)
    assert (p.kernel, p.kernel_param, p.alpha_xy, p.alpha_z, p.center_khz) == ("power", 2.0, 0.05, 0.02, 0.3)
    assert (p.sequence, p.tau_us, p.t2_us, p.gamma1_per_us, p.lattice) == ("cpmg:2", 2.0, 30.0, 1e-4, 4)
    assert cfg.echo_params(t2_us=90.0).t2_us == 90.0
    assert cfg.echo_params().sequence == "hahn"


def test_draws_are_reproducible_and_independent_of_grouping():
    ids = range(TINY.n_total)
    params, seeds = draw_samples(TINY, ids)
    assert seeds.dtype == np.uint64 and len(set(seeds.tolist())) == len(seeds)
    # any subset, order or part size draws the same samples
    for i in reversed(ids):
        assert draw_sample(TINY.replace(part_size=1), i) == (params[i], int(seeds[i]))
    assert draw_samples(TINY, [7, 2])[0] == [params[7], params[2]]
    # another dataset seed draws other samples
    assert draw_sample(TINY.replace(seed=1), 0)[0] != params[0]
    # the protocol does not change the samples, only how they are measured
    other, other_seeds = draw_samples(TINY.replace(protocol="cpmg:4@60/2,hahn@90/1"), ids)
    np.testing.assert_array_equal(other_seeds, seeds)
    assert [p.replace(sequence="hahn", theta=math.pi / 2, tau_us=1.0) for p in other] == params
    with pytest.raises(ValueError, match="index"):
        draw_sample(TINY, TINY.n_total)


def test_kernel_blocks_follow_the_config_order():
    cfg = TINY.replace(kernels="rkky,gaussian")
    params, _ = draw_samples(cfg, range(cfg.n_total))
    assert [p.kernel for p in params] == ["rkky"] * 4 + ["gaussian"] * 4


def test_draws_stay_in_their_ranges_and_w_window():
    cfg = TINY.replace(n_per_kernel=100, w_range=(0.15, 0.2))
    params, _ = draw_samples(cfg, range(cfg.n_total))
    w = np.array([p.W for p in params])
    assert np.all((w >= 0.15) & (w <= 0.2))
    for p in params:
        assert 0.01 <= p.alpha_xy <= 0.1 and 0.01 <= p.alpha_z <= 0.1
        lo, hi = cfg.kernel_param_range(p.kernel)
        assert lo <= p.kernel_param <= hi


def test_point_ranges_are_allowed():
    cfg = TINY.replace(alpha_xy_range=(0.05, 0.05), alpha_z_range=(0.1, 0.1), xi_range=(9, 9))
    p, _ = draw_sample(cfg, 0)
    assert (p.alpha_xy, p.alpha_z, p.kernel_param) == (0.05, 0.1, 9.0)
    assert math.isclose(p.W, 0.2)


def test_uniform_kernel_blocks_have_no_parameter():
    cfg = TINY.replace(kernels=["uniform"])
    assert isinstance(draw_sample(cfg, 0)[0], EchoParams)
    assert draw_sample(cfg, 0)[0].kernel_param == 0.0


# ----------------------------------------------------------------------------- nuisances


NUISANCE = {"t2_us_range": (10.0, 1000.0), "gamma1_per_us_range": (0.0, 1e-3), "center_khz_range": (-0.5, 0.5)}


def test_nuisances_are_drawn_per_sample_in_their_ranges():
    cfg = TINY.replace(n_per_kernel=150, **NUISANCE)
    params, _ = draw_samples(cfg, range(cfg.n_total))
    t2 = np.array([p.t2_us for p in params])
    g1 = np.array([p.gamma1_per_us for p in params])
    c = np.array([p.center_khz for p in params])
    assert np.all((t2 >= 10.0) & (t2 <= 1000.0)) and len(set(t2)) == len(t2)
    assert np.all((g1 >= 0.0) & (g1 <= 1e-3)) and len(set(g1)) == len(g1)
    assert np.all(np.abs(c) <= 0.5) and len(set(c)) == len(c)
    # T2 is log-uniform: log10 T2 is spread evenly over [1, 3] (a linear draw would put ~90 % above 100 us)
    log_t2 = np.log10(t2)
    assert abs(np.median(log_t2) - 2.0) < 0.15, np.median(log_t2)
    assert 0.4 < np.mean(t2 < 100.0) < 0.6
    assert 0.2 < np.mean(log_t2 < 1.5) < 0.3
    # gamma1 and the carrier offset are uniform
    assert abs(np.median(g1) - 5e-4) < 1e-4 and abs(np.median(c)) < 0.1


def test_nuisances_are_drawn_after_the_old_draws():
    """A config with nuisance ranges draws the same couplings, kernels and detunings as without."""
    plain, plain_seeds = draw_samples(TINY, range(TINY.n_total))
    cfg = TINY.replace(**NUISANCE)
    noisy, noisy_seeds = draw_samples(cfg, range(cfg.n_total))
    np.testing.assert_array_equal(noisy_seeds, plain_seeds)
    for a, b in zip(plain, noisy):
        assert (a.kernel, a.kernel_param, a.alpha_xy, a.alpha_z) == (b.kernel, b.kernel_param, b.alpha_xy, b.alpha_z)
        assert b.t2_us is not None and b.gamma1_per_us > 0 and b.center_khz != 0
    # point ranges draw nothing: the same samples, at the point
    t2_point, _ = draw_sample(TINY.replace(t2_us_range=(50.0, 50.0)), 3)
    center_point, _ = draw_sample(TINY.replace(center_khz_range=(0.25, 0.25)), 3)
    assert t2_point == plain[3].replace(t2_us=50.0)
    assert center_point == plain[3].replace(center_khz=0.25)
    # each range draws from the stream in a fixed order: center, T2, gamma1
    only_t2, _ = draw_sample(TINY.replace(t2_us_range=NUISANCE["t2_us_range"]), 3)
    with_center, _ = draw_sample(TINY.replace(t2_us_range=NUISANCE["t2_us_range"],
                                              center_khz_range=NUISANCE["center_khz_range"]), 3)
    assert only_t2.t2_us != with_center.t2_us
    assert with_center.t2_us == noisy[3].t2_us and with_center.center_khz == noisy[3].center_khz


def test_fixed_t2_and_gamma1_are_kept():
    p, _ = draw_sample(TINY.replace(t2_us=40.0, gamma1_per_us=2e-4), 0)
    assert (p.t2_us, p.gamma1_per_us) == (40.0, 2e-4)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"n_per_kernel": 0}, "n_per_kernel"),
        ({"n_per_kernel": 2.5}, "n_per_kernel"),
        ({"lattice": 1}, "lattice"),
        ({"protocol": "hahn@90/-1"}, "protocol"),
        ({"protocol": "hahn@90/0.01"}, "protocol"),  # tau shorter than a step
        ({"protocol": ""}, "protocol"),
        ({"protocol": []}, "protocol"),
        ({"protocol": 5}, "protocol"),
        ({"protocol": "hahn"}, "protocol"),
        ({"protocol": "hahn@200"}, "protocol"),
        ({"protocol": "hahn@90/abc"}, "protocol"),
        ({"protocol": "cpmg:x@90"}, "protocol"),
        ({"protocol": "echo@90"}, "protocol"),
        ({"protocol": "hahn@90/1,hahn@90/1"}, "protocol"),
        ({"t2_us": 0.0}, "t2_us"),
        ({"t2_us_range": (0.0, 10.0)}, "t2_us_range"),
        ({"t2_us_range": (10.0, 1.0)}, "t2_us_range"),
        ({"t2_us_range": (10.0,)}, "t2_us_range"),
        ({"t2_us": 5.0, "t2_us_range": (1.0, 10.0)}, "t2_us_range"),
        ({"gamma1_per_us_range": (-1.0, 0.0)}, "gamma1_per_us_range"),
        ({"gamma1_per_us_range": (0.0, float("inf"))}, "gamma1_per_us_range"),
        ({"gamma1_per_us": 0.1, "gamma1_per_us_range": (0.0, 1e-3)}, "gamma1_per_us_range"),
        ({"center_khz_range": (3.0, 1.0)}, "center_khz_range"),
        ({"seed": -1}, "seed"),
        ({"part_size": 0}, "part_size"),
        ({"kernels": "gaussian,lorentz"}, "kernels"),
        ({"kernels": "power,power"}, "kernels"),
        ({"kernels": []}, "kernels"),
        ({"alpha_xy_range": (0.1, 0.01)}, "alpha_xy_range"),
        ({"w_range": (0.3, 0.1)}, "w_range"),
        ({"w_range": (0.4, 0.5)}, "w_range"),  # W reaches at most 0.3
        ({"w_range": (0.0, 0.03)}, "w_range"),  # touches the reachable 0.03 in a single point
        ({"xi_range": (0.0, 8.0)}, "xi_range"),
        ({"gamma_range": (-1.0, 13.0)}, "gamma_range"),
        ({"p_range": (1.0, float("nan"))}, "p_range"),
        ({"p_range": (1.0,)}, "p_range"),
        ({"scheme": "rk4"}, "scheme"),
        ({"field_every": 0}, "field_every"),
        ({"geometry": "cubic"}, "geometry"),
        ({"gamma2_per_us": -1.0}, "gamma2_per_us"),
        ({"colour": "blue"}, "colour"),
        ({"tau_us": 1.0}, "tau_us"),  # replaced by the protocol
        ({"thetas": (1.0,)}, "thetas"),
        ({"sequence": "hahn"}, "sequence"),
    ],
)
def test_invalid_configs_name_the_option(changes, option):
    with pytest.raises(ConfigError) as info:
        TINY.replace(**changes)
    assert info.value.option == option
    assert str(info.value).startswith(f"{option}: ")
    assert "\n" not in str(info.value)


def test_invalid_protocol_messages_say_what_is_wrong():
    with pytest.raises(ConfigError, match="given twice"):
        TINY.replace(protocol="hahn@90/1,hahn@90/1")
    with pytest.raises(ConfigError, match=r"ANGLE_DEG must be in \(0, 180\)"):
        TINY.replace(protocol="hahn@90/1,hahn@0/1")
    with pytest.raises(ConfigError, match="SEQUENCE@ANGLE_DEG"):
        TINY.replace(protocol="hahn/90")
    with pytest.raises(ConfigError, match="cpmg:x"):
        DatasetConfig(protocol="hahn@90,cpmg:x@90")


def test_dict_round_trip():
    cfg = TINY.replace(t2_us=50.0, kernels="power")
    assert DatasetConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.differing_keys(TINY) == ["kernels", "t2_us"]
    rich = TINY.replace(protocol="hahn@90/1,cpmg:2@60/2", **NUISANCE)
    d = rich.to_dict()
    assert d["protocol"] == rich.protocol.to_list() and d["t2_us_range"] == [10.0, 1000.0]
    assert DatasetConfig.from_dict(d) == rich
    assert rich.differing_keys(TINY) == ["protocol", "t2_us_range", "gamma1_per_us_range", "center_khz_range"]

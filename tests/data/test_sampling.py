"""The dataset protocol: validation, presets and reproducible per-sample draws."""
import math

import numpy as np
import pytest

from pyecho.data.sampling import PRESETS, ConfigError, DatasetConfig, draw_sample, draw_samples
from pyecho.physics.params import EchoParams

TINY = DatasetConfig(n_per_kernel=4, lattice=4, tau_us=1.0, part_size=3)


def test_presets_follow_the_paper_protocol():
    paper, quick = PRESETS["paper"], PRESETS["quick"]
    assert (paper.n_per_kernel, paper.lattice, paper.tau_us, paper.dt_us) == (5000, 100, 100.0, 0.16)
    assert paper.kernels == ("gaussian", "power", "rkky") and paper.n_total == 15000
    assert paper.n_samples == 1875
    assert paper.w_range == (0.1, 0.3) and paper.alpha_xy_range == paper.alpha_z_range == (0.01, 0.1)
    assert (paper.xi_range, paper.p_range, paper.gamma_range) == ((8, 32), (1, 3), (13, 52))
    # quick differs only in size: same ranges and the paper's time grid
    assert quick.replace(n_per_kernel=5000, lattice=100, part_size=paper.part_size) == paper


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


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"n_per_kernel": 0}, "n_per_kernel"),
        ({"n_per_kernel": 2.5}, "n_per_kernel"),
        ({"lattice": 1}, "lattice"),
        ({"tau_us": -1.0}, "tau_us"),
        ({"t2_us": 0.0}, "t2_us"),
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
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_configs_name_the_option(changes, option):
    with pytest.raises(ConfigError) as info:
        TINY.replace(**changes)
    assert info.value.option == option
    assert str(info.value).startswith(f"{option}: ")


def test_dict_round_trip():
    cfg = TINY.replace(t2_us=50.0, kernels="power")
    assert DatasetConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.differing_keys(TINY) == ["kernels", "t2_us"]

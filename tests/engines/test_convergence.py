"""The integrators converge at their orders: explicit first, extrapolated second (small lattice)."""
from __future__ import annotations

import pytest

from pyecho import EchoParams
from pyecho.convergence import convergence_study

#: fast dephasing (80 kHz) and strong coupling make the mean field evolve within a short tau
BASE = EchoParams(lattice=12, alpha_xy=0.1, alpha_z=0.1, tau_us=6.4, linewidth_khz=80.0)
SCHEMES = [("explicit", 1), ("extrapolated", 1), ("extrapolated", 4)]
DTS_US = [0.32, 0.16, 0.08]


@pytest.fixture(scope="module")
def study():
    return convergence_study(BASE, [("gaussian", 2.0), ("power", 2.0)], SCHEMES, DTS_US, refine=8)


@pytest.mark.parametrize("kernel", ["gaussian", "power"])
def test_observed_orders(study, kernel):
    assert study.order(kernel, "explicit") == pytest.approx(1.0, abs=0.15)
    assert study.order(kernel, "extrapolated:1") == pytest.approx(2.0, abs=0.2)
    assert study.order(kernel, "extrapolated:4") == pytest.approx(2.0, abs=0.3)


@pytest.mark.parametrize("kernel", ["gaussian", "power"])
def test_four_steps_per_field_beat_the_explicit_step(study, kernel):
    """A quarter of the FFTs, and still closer to the converged echo than the contract's step."""
    for dt in (0.16, 0.08):
        assert study.error(kernel, "extrapolated:4", dt) < study.error(kernel, "explicit", dt)


def test_steps_must_divide_tau():
    with pytest.raises(ValueError, match="does not divide tau_us"):
        convergence_study(BASE, [("gaussian", 2.0)], SCHEMES, [0.3, 0.16])

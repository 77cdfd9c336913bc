"""Small priors and protocols for the fit tests: 8 x 8 lattices, records of a few hundred samples."""
from __future__ import annotations

import pytest

from pyecho.data.sampling import DatasetConfig
from pyecho.physics.protocol import RecordGrid

#: a prior of the range preset's kind on 8 x 8 with short records (tau 8 us: Hahn 150 samples,
#: CPMG:3 350); strong couplings so that a few hundred samples carry the kernel
SMALL = DatasetConfig(lattice=8, protocol="hahn@75/8,cpmg:3@90/8", n_per_kernel=3, part_size=3,
                      alpha_xy_range=(0.2, 0.4), alpha_z_range=(0.1, 0.3), w_range=(0.5, 1.1),
                      xi_range=(1.5, 3.5), p_range=(1.0, 3.0), gamma_range=(4.0, 6.0),
                      t2_us_range=(30.0, 300.0), center_khz_range=(-2.0, 2.0), linewidth_khz=40.0)


def small_grid(config: DatasetConfig = SMALL) -> RecordGrid:
    return RecordGrid(config.protocol, config.dt_us)


@pytest.fixture(autouse=True)
def _eager_torch(monkeypatch):
    """The tests' simulations are tiny: compiling them would cost more than running them."""
    monkeypatch.setenv("PYECHO_TORCH_COMPILE", "never")

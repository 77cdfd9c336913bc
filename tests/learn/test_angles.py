"""The angle study: it finds the angle whose phase carries alpha_z, choosing on training rows only."""
import numpy as np

from pyecho.learn.angles import run_angle_study
from pyecho.learn.base import LearnData, make_split

from .conftest import make_synthetic_dataset


def _two_angle_data(n: int = 240) -> LearnData:
    """The synthetic echoes at 'theta_0', and a second and third angle: only the second carries
    alpha_z, as a phase that winds at a rate set by alpha_z (the physics of theta != 90°)."""
    ds = make_synthetic_dataset(n, seed=4)
    t = ds.t_us
    magnitude = np.abs(ds.M)
    a_z = ds.labels["alpha_z"].to_numpy()
    carrier = magnitude * np.exp(-1j * a_z[:, None] * t[None, :] * 5.0)
    plain = magnitude * np.exp(-1j * 0.02 * t[None, :])
    series = np.stack([ds.M, plain, carrier], axis=1)
    return LearnData.from_dataset(type("DS", (), {"series": series, "thetas": np.array([np.pi / 2, 1.0, 0.5]),
                                                  "labels": ds.labels, "metadata": ds.metadata, "t_us": t,
                                                  "echo_index": ds.echo_index})())


def test_angle_study_finds_the_informative_angle():
    data = _two_angle_data()
    split = make_split(data.labels, 0.2, 0)
    study = run_angle_study(data, split, snrs=(np.inf, 50.0))
    assert study.best_second_theta == 0.5
    carried = study.score((np.pi / 2, 0.5), "alpha_z", np.inf)
    assert carried.r2_test > 0.9 and carried.r2_train_loo > 0.9
    assert study.score((np.pi / 2, 1.0), "alpha_z", np.inf).r2_test < 0.5
    assert {s.snr for s in study.scores} == {np.inf, 50.0}
    assert len(study.scores) == 2 * 2 * (3 + 2)  # SNRs x targets x (3 single angles + 2 pairs)


def test_single_angle_data_has_no_study():
    data = LearnData.from_dataset(make_synthetic_dataset(60))
    assert run_angle_study(data, make_split(data.labels, 0.2, 0)) is None

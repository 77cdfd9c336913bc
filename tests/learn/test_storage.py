"""Feature rows a block at a time: in memory or an unlinked scratch file, written in any order,
read back as written, standardised as scikit-learn's StandardScaler does."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from pyecho.learn import storage as storage_module
from pyecho.learn.storage import FeatureRows


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(storage_module, "BLOCK_ROWS", 37)  # every pass in several blocks, the last one short


def features(n_rows: int, n_features: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_rows, n_features)) * rng.uniform(0.5, 3, n_features)
            + rng.uniform(-2, 2, n_features)).astype(np.float32)


def test_rows_in_a_scratch_file_read_back_as_written(tmp_path):
    F = features(100, 13)
    for rows in (FeatureRows(100, 13), FeatureRows(100, 13, directory=tmp_path / "scratch")):
        for start in range(0, 100, 30):
            rows.write(start, F[start:start + 30].astype(np.float64))  # converted to float32
        np.testing.assert_array_equal(np.concatenate([b for _, b in rows.blocks()]), F)
        np.testing.assert_array_equal(rows.read(17, 58), F[17:58])
        with pytest.raises(ValueError, match=r"does not fit features \(100, 13\)"):
            rows.write(90, F[:20])
        rows.close()
    assert list((tmp_path / "scratch").iterdir()) == []  # the scratch file was never linked


def test_rows_from_blocks_in_any_order_and_from_no_blocks(tmp_path):
    F = features(100, 13)
    blocks = [(start, F[start:start + 30]) for start in (60, 0, 90, 30)]
    rows = FeatureRows.from_blocks(100, iter(blocks), directory=tmp_path)
    np.testing.assert_array_equal(rows.take(np.arange(100)), F)
    np.testing.assert_array_equal(rows.take(np.array([3, 35, 36, 99])), F[[3, 35, 36, 99]])
    rows.close()
    with pytest.raises(ValueError, match="blocks: no rows"):
        FeatureRows.from_blocks(100, iter([]))


def test_standardise_equals_standard_scaler_and_only_centres_a_constant_feature():
    F = features(200, 6)
    F[:, 4] = 3.25
    want = StandardScaler().fit(F.astype(np.float64))
    rows = FeatureRows.of(F.copy())
    mean, scale = rows.standardise()
    np.testing.assert_allclose(mean, want.mean_, rtol=1e-12)
    np.testing.assert_allclose(scale, want.scale_, rtol=1e-10)
    Z = rows.read(0, 200)
    np.testing.assert_allclose(Z, want.transform(F.astype(np.float64)), atol=1e-6)
    assert scale[4] == 1.0 and np.all(Z[:, 4] == 0)

"""Feature matrices too large to hold twice, read and written a block of rows at a time.

:class:`FeatureRows` holds a float32 feature matrix in memory or in an unlinked scratch file
(``pyecho learn --stream``); :func:`blockwise_mean_std` merges column statistics over blocks.
The linear heads, MiniRocket, the CNN's input statistics and the domain guard read their
features through these, so what a pass holds is one block of :data:`BLOCK_ROWS` rows.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

#: rows a pass over a feature matrix reads at a time (a float64 copy of 2 048 rows of 7 200 features: 118 MB)
BLOCK_ROWS = 2048
_FLOAT32_BYTES = 4


class FeatureRows:
    """A float32 feature matrix (n_rows, n_features), written and read a block of rows at a time:
    in memory, or in an unlinked scratch file (gone when closed or when the process ends) read
    with plain reads -- never memory-mapped, so what a pass holds is its block, and the page
    cache stays the system's.

    Parameters
    ----------
    n_rows, n_features : its shape
    directory : None: held in memory; a directory: in an unlinked scratch file there (created
        with the directory if missing), read and written with plain reads and writes
    """

    def __init__(self, n_rows: int, n_features: int, *, directory: str | Path | None = None):
        self.shape = (int(n_rows), int(n_features))
        self._array: np.ndarray | None = None
        self._fd: int | None = None
        if directory is None:
            self._array = np.empty(self.shape, dtype=np.float32)
        else:
            Path(directory).mkdir(parents=True, exist_ok=True)
            self._file = tempfile.TemporaryFile(dir=directory)  # unlinked already: nothing to clean up
            self._fd = self._file.fileno()
            os.ftruncate(self._fd, self.shape[0] * self.shape[1] * _FLOAT32_BYTES)

    @classmethod
    def of(cls, F) -> "FeatureRows":
        """An array (B, n_features) as FeatureRows in memory: float32, no copy when it is already
        (its standardisation then rewrites the caller's array)."""
        F = np.asarray(F)
        if F.ndim != 2 or not np.issubdtype(F.dtype, np.number):
            raise ValueError(f"F: expected a numeric array (B, n_features); got {F.dtype} {F.shape}")
        out = cls.__new__(cls)
        out.shape, out._fd = F.shape, None
        out._array = np.ascontiguousarray(F, dtype=np.float32)
        return out

    @classmethod
    def from_blocks(cls, n_rows: int, blocks, *, directory: str | Path | None = None) -> "FeatureRows":
        """FeatureRows of ``n_rows`` rows written from ``blocks``: (first row, rows (B_i, n_features))
        pairs covering every row; the columns are the first block's. Released if a block fails."""
        out = None
        try:
            for start, block in blocks:
                out = cls(n_rows, block.shape[1], directory=directory) if out is None else out
                out.write(start, block)
        except BaseException:
            if out is not None:
                out.close()
            raise
        if out is None:
            raise ValueError("blocks: no rows")
        return out

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def n_features(self) -> int:
        return self.shape[1]

    def _offset(self, row: int) -> int:
        return row * self.shape[1] * _FLOAT32_BYTES

    def write(self, start: int, block: np.ndarray) -> None:
        """Rows [start, start + len(block)) := ``block`` (B, n_features)."""
        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[1] != self.shape[1] or not 0 <= start <= self.shape[0] - len(block):
            raise ValueError(f"block: {block.shape} at row {start} does not fit features {self.shape}")
        if self._array is not None:
            self._array[start:start + len(block)] = block
            return
        view, offset = memoryview(block).cast("B"), self._offset(start)
        while view:
            n = os.pwrite(self._fd, view, offset)
            view, offset = view[n:], offset + n

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop): float32 (stop - start, n_features), a view of the array in memory."""
        if self._array is not None:
            return self._array[start:stop]
        out = np.empty((stop - start, self.shape[1]), dtype=np.float32)
        view, offset = memoryview(out).cast("B"), self._offset(start)
        while view:
            n = os.preadv(self._fd, [view], offset)
            if n == 0:
                raise OSError(f"feature scratch file ended {len(view)} bytes early")
            view, offset = view[n:], offset + n
        return out

    def blocks(self, size: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) of every block of ``size`` rows (default :data:`BLOCK_ROWS`), in order."""
        size = BLOCK_ROWS if size is None else size
        for start in range(0, self.shape[0], size):
            yield start, self.read(start, min(start + size, self.shape[0]))

    def take(self, rows) -> np.ndarray:
        """The rows ``rows`` (sorted int array), float32 (len(rows), n_features); one pass over the blocks."""
        rows = np.asarray(rows)
        if self._array is not None:
            return self._array[rows]
        out = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        for start, block in self.blocks():
            lo, hi = np.searchsorted(rows, [start, start + len(block)])
            out[lo:hi] = block[rows[lo:hi] - start]
        return out

    def standardise(self) -> tuple[np.ndarray, np.ndarray]:
        """Standardise every feature in place (mean 0, variance 1 over the rows; a constant
        feature, whose standard deviation is below 10 machine epsilon as in scikit-learn's
        ``StandardScaler``, is only centred). Returns the float64 (mean, scale), (n_features,) each."""
        _, mean, scale = blockwise_mean_std(block for _, block in self.blocks())
        scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
        for start, block in self.blocks():
            self.write(start, (block - mean) / scale)
        return mean, scale

    def close(self) -> None:
        """Release the scratch file (the features in memory stay readable)."""
        if self._fd is not None:
            self._file.close()
            self._fd = None


def blockwise_mean_std(blocks: Iterable[np.ndarray]) -> tuple[int, np.ndarray, np.ndarray]:
    """(rows, mean, standard deviation) of every column over the rows of ``blocks`` (each (B_i, F)),
    float64, a block at a time: each block's mean and squared deviations, merged exactly (Chan,
    Golub & LeVeque), so no column's variance is lost to the cancellation of sums of squares."""
    n, mean, m2 = 0, None, None
    for block in blocks:
        b = np.asarray(block, dtype=np.float64)
        nb, mb = len(b), b.mean(axis=0)
        m2b = ((b - mb) ** 2).sum(axis=0)
        if mean is None:
            n, mean, m2 = nb, mb, m2b
            continue
        delta, total = mb - mean, n + nb
        mean = mean + delta * (nb / total)
        m2 = m2 + m2b + delta ** 2 * (n * nb / total)
        n = total
    if mean is None:
        raise ValueError("blocks: no rows")
    return n, mean, np.sqrt(m2 / n)

"""Unsupervised views of the echoes (paper Appendix B 1-2, Fig. 6): 2-D PCA and k-means."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from pyecho.learn.base import NO_JSON

#: the cluster counts whose labels and mean curves are kept (the figure shows K = 2)
KEPT_K: tuple[int, ...] = (2, 3)


@dataclass(frozen=True)
class PcaResult:
    """scores : (B, 2) principal-component coordinates; explained : explained-variance ratios (2,)."""

    scores: np.ndarray = field(metadata=NO_JSON)
    explained: np.ndarray


@dataclass(frozen=True)
class KMeansResult:
    """k-means for K = 1..k_max.

    k : the K values; sse : sum of squared distances of all rows to their nearest centre, per K;
    elbow : K of the largest second difference of the SSE; labels / centres : for K in
    :data:`KEPT_K`, (B,) cluster index and (K, T) cluster-mean curves.
    """

    k: tuple[int, ...]
    sse: tuple[float, ...]
    elbow: int
    labels: dict[int, np.ndarray] = field(metadata=NO_JSON)
    centres: dict[int, np.ndarray] = field(metadata=NO_JSON)


@dataclass(frozen=True)
class UnsupervisedResult:
    pca: PcaResult
    kmeans: KMeansResult


def pca_2d(X: np.ndarray, seed: int = 0) -> PcaResult:
    """2-D PCA of the (centred) normalised echoes X (B, T)."""
    pca = PCA(n_components=2, random_state=seed).fit(X)
    return PcaResult(scores=pca.transform(X), explained=pca.explained_variance_ratio_)


def kmeans_scree(X: np.ndarray, k_max: int = 10, seed: int = 0, max_samples: int | None = 5000) -> KMeansResult:
    """k-means for K = 1..k_max: the SSE (inertia) scree and the cluster-mean curves.

    Parameters
    ----------
    X : array (B, T)
    k_max : largest K
    max_samples : fit on a random subsample of at most this many rows (None: all rows);
        inertia is then re-evaluated on all rows so the scree is comparable across K.
    """
    rng = np.random.default_rng(seed)
    Xf = X if max_samples is None or X.shape[0] <= max_samples else X[
        rng.choice(X.shape[0], max_samples, replace=False)]
    ks = tuple(range(1, min(k_max, Xf.shape[0]) + 1))
    sse, labels, centres = [], {}, {}
    for k in ks:
        km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(Xf)
        lab = km.predict(X)
        sse.append(float(((X - km.cluster_centers_[lab]) ** 2).sum()))
        if k in KEPT_K:
            labels[k] = lab
            centres[k] = np.stack([X[lab == c].mean(axis=0) if np.any(lab == c)
                                   else km.cluster_centers_[c] for c in range(k)])
    s = np.asarray(sse)
    elbow = int(ks[1 + int(np.argmax(s[:-2] - 2 * s[1:-1] + s[2:]))]) if len(s) >= 3 else ks[-1]
    return KMeansResult(k=ks, sse=tuple(sse), elbow=elbow, labels=labels, centres=centres)


def run_unsupervised(X_norm: np.ndarray, seed: int, kmeans_max_samples: int, k_max: int = 10) -> UnsupervisedResult:
    """Stage: PCA and the k-means scree of the normalised echoes X_norm (B, T)."""
    return UnsupervisedResult(pca=pca_2d(X_norm, seed), kmeans=kmeans_scree(X_norm, k_max, seed, kmeans_max_samples))

"""Unsupervised views of the echoes (paper Appendix B 1-2, Fig. 6): 2-D PCA and k-means."""
from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA


def pca_2d(X: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2-D PCA of the (centred) normalised echoes.

    Parameters
    ----------
    X : array (B, T), normalised |M|

    Returns
    -------
    scores : array (B, 2), the first two principal-component coordinates
    explained : array (2,), explained-variance ratios
    """
    pca = PCA(n_components=2, random_state=seed).fit(X)
    return pca.transform(X), pca.explained_variance_ratio_


def kmeans_scree(
    X: np.ndarray, k_max: int = 10, seed: int = 0, max_samples: int | None = 5000
) -> dict:
    """k-means for K = 1..k_max: the SSE (inertia) scree and the cluster-mean curves.

    Parameters
    ----------
    X : array (B, T)
    k_max : largest K
    max_samples : fit on a random subsample of at most this many rows (None: all rows);
        inertia is then re-evaluated on all rows so the scree is comparable across K.

    Returns
    -------
    dict with ``k`` (list of K), ``sse`` (list, sum of squared distances of all rows to
    their nearest centre), ``labels`` {K: (B,) int array for K = 2, 3}, ``centres``
    {K: (K, T) array for K = 2, 3}, ``elbow`` (K chosen by the largest second difference).
    """
    rng = np.random.default_rng(seed)
    Xf = X if max_samples is None or X.shape[0] <= max_samples else X[
        rng.choice(X.shape[0], max_samples, replace=False)]
    ks = list(range(1, min(k_max, Xf.shape[0]) + 1))
    sse, labels, centres = [], {}, {}
    for k in ks:
        km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(Xf)
        lab = km.predict(X)
        sse.append(float(((X - km.cluster_centers_[lab]) ** 2).sum()))
        if k in (2, 3):
            labels[k] = lab
            centres[k] = np.stack([X[lab == c].mean(axis=0) if np.any(lab == c)
                                   else km.cluster_centers_[c] for c in range(k)])
    s = np.asarray(sse)
    elbow = int(ks[1 + int(np.argmax(s[:-2] - 2 * s[1:-1] + s[2:]))]) if len(s) >= 3 else ks[-1]
    return {"k": ks, "sse": sse, "labels": labels, "centres": centres, "elbow": elbow}

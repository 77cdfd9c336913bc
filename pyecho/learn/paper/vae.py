"""beta-VAE for normalised echoes (paper Appendix B 3, Fig. 3).

Architecture as in the paper: encoder ``n_in - h1 - ... - hk - (2, 2)`` (mean and log-variance
of a 2-D Gaussian latent), decoder the mirror image ``2 - hk - ... - h1 - n_in``; leaky ReLU
(slope 0.01) everywhere except a sigmoid output. Loss = binary cross-entropy reconstruction
(summed over samples, inputs in [0, 1]) + beta * KL(q(z|x) || N(0, 1)), beta = 2. Training stops
when the validation reconstruction loss has not improved for ``patience`` = 7 epochs, and the
best weights are restored.

Full series: ``BetaVAE(hidden=(512, 128, 16))``; window: ``BetaVAE(hidden=(128, 32, 16))``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted
from torch import nn

from pyecho.learn.base import NO_JSON, Note, no_note

#: the paper's KL weight and early-stopping patience
BETA = 2.0
PATIENCE = 7
#: latent coordinates of the decoded traversals (Fig. 3)
TRAVERSAL_GRID = np.linspace(-2.5, 2.5, 9)


class VaeInput(StrEnum):
    """What a VAE sees: the full normalised series or the area of interest."""

    FULL = "full"
    WINDOW = "window"


@dataclass(frozen=True)
class EpochLoss:
    """Per-echo losses of one epoch: training (recon + beta KL), validation reconstruction and KL."""

    epoch: int
    train_loss: float
    val_recon: float
    val_kl: float


class _VAE(nn.Module):
    def __init__(self, n_in: int, hidden: tuple[int, ...], latent: int):
        super().__init__()
        enc, prev = [], n_in
        for h in hidden:
            enc += [nn.Linear(prev, h), nn.LeakyReLU(0.01)]
            prev = h
        self.encoder = nn.Sequential(*enc)
        self.mu = nn.Linear(prev, latent)
        self.logvar = nn.Linear(prev, latent)
        dec, prev = [], latent
        for h in reversed(hidden):
            dec += [nn.Linear(prev, h), nn.LeakyReLU(0.01)]
            prev = h
        dec += [nn.Linear(prev, n_in), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x):
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(z), mu, logvar


class BetaVAE(TransformerMixin, BaseEstimator):
    """beta-VAE with early stopping; sklearn-style ``fit(X).transform(X)``.

    Parameters
    ----------
    hidden : hidden-layer widths of the encoder (the decoder mirrors them)
    latent_dim : latent dimension (2 in the paper)
    beta : weight of the KL term (2 in the paper)
    lr : Adam learning rate
    batch_size : minibatch size
    max_epochs : hard cap on epochs (for run-time budgets)
    patience : early-stopping patience in epochs on the validation reconstruction loss
    validation_fraction : fraction of rows held out for early stopping
    random_state : seed for the split, the initialisation and the reparametrisation noise
    n_threads : torch CPU threads used during fit (None: leave torch's setting)

    Attributes
    ----------
    history_ : list of :class:`EpochLoss`, per-echo losses
    best_epoch_ : epoch whose weights were kept
    n_features_in_ : input length
    """

    def __init__(self, hidden=(512, 128, 16), latent_dim=2, beta=BETA, lr=1e-3, batch_size=128,
                 max_epochs=100, patience=PATIENCE, validation_fraction=0.1, random_state=0,
                 n_threads=None):
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.beta = beta
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.n_threads = n_threads

    def _validate(self):
        if self.latent_dim < 1 or self.beta < 0 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("BetaVAE: latent_dim, max_epochs, patience must be >= 1 and beta >= 0")
        if not 0 < self.validation_fraction < 1:
            raise ValueError("BetaVAE: validation_fraction must be in (0, 1)")

    @staticmethod
    def _loss(xhat, x, mu, logvar):
        recon = nn.functional.binary_cross_entropy(xhat, x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return recon, kl

    def fit(self, X, y=None, on_epoch=None):
        """Train on X (B, n_in) with values in [0, 1]; ``on_epoch(record)`` gets each :class:`EpochLoss`."""
        self._validate()
        X = check_array(X, dtype=np.float32)
        if X.min() < 0 or X.max() > 1:
            raise ValueError("BetaVAE expects inputs in [0, 1] (normalised |M|)")
        old_threads = torch.get_num_threads()
        if self.n_threads:
            torch.set_num_threads(int(self.n_threads))
        try:
            self._fit(X, on_epoch)
        finally:
            torch.set_num_threads(old_threads)
        return self

    def _fit(self, X, on_epoch):
        rng = np.random.default_rng(self.random_state)
        gen = torch.Generator().manual_seed(int(self.random_state))
        torch.manual_seed(int(self.random_state))
        n = X.shape[0]
        perm = rng.permutation(n)
        n_val = max(1, int(round(self.validation_fraction * n)))
        Xv, Xt = torch.from_numpy(X[perm[:n_val]]), torch.from_numpy(X[perm[n_val:]])
        self.n_features_in_ = X.shape[1]
        self.model_ = _VAE(X.shape[1], tuple(self.hidden), self.latent_dim)
        opt = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
        best, best_state, bad = np.inf, None, 0
        self.history_ = []
        for epoch in range(1, self.max_epochs + 1):
            self.model_.train()
            order = torch.randperm(Xt.shape[0], generator=gen)
            total = 0.0
            for i in range(0, Xt.shape[0], self.batch_size):
                xb = Xt[order[i:i + self.batch_size]]
                xhat, mu, logvar = self.model_(xb)
                recon, kl = self._loss(xhat, xb, mu, logvar)
                loss = (recon + self.beta * kl) / xb.shape[0]
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * xb.shape[0]
            self.model_.eval()
            with torch.no_grad():
                xhat, mu, logvar = self.model_(Xv)
                recon, kl = self._loss(xhat, Xv, mu, logvar)
            rec = EpochLoss(epoch=epoch, train_loss=total / Xt.shape[0], val_recon=float(recon) / n_val,
                            val_kl=float(kl) / n_val)
            self.history_.append(rec)
            if on_epoch is not None:
                on_epoch(rec)
            if rec.val_recon < best - 1e-6:
                best, bad, self.best_epoch_ = rec.val_recon, 0, epoch
                best_state = {k: v.detach().clone() for k, v in self.model_.state_dict().items()}
            else:
                bad += 1
                if bad >= self.patience:
                    break
        self.model_.load_state_dict(best_state)
        self.model_.eval()

    def transform(self, X):
        """Latent means, array (B, latent_dim)."""
        check_is_fitted(self, "model_")
        X = check_array(X, dtype=np.float32)
        with torch.no_grad():
            mu, _ = self.model_.encode(torch.from_numpy(X))
        return mu.numpy()

    def decode(self, Z):
        """Decoder output for latent points Z (n, latent_dim) -> (n, n_in) in [0, 1]."""
        check_is_fitted(self, "model_")
        Z = check_array(Z, dtype=np.float32)
        with torch.no_grad():
            return self.model_.decoder(torch.from_numpy(Z)).numpy()

    inverse_transform = decode

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Weights as plain numpy arrays (for ``np.savez``; no pickle needed to load)."""
        check_is_fitted(self, "model_")
        return {k: v.numpy() for k, v in self.model_.state_dict().items()}


@dataclass(frozen=True)
class VaeResult:
    """A fitted beta-VAE and what the report shows of it.

    inputs : :class:`VaeInput`; arch : layer widths n_in-...-latent; history : per-epoch losses;
    best_epoch : the epoch whose weights were kept; abs_corr_W : |corr(latent axis i, W)|;
    Z : (B, 2) latent means; traversals : (2, len(grid), n_in) decoded curves along each axis.
    """

    inputs: VaeInput
    arch: tuple[int, ...]
    history: tuple[EpochLoss, ...]
    best_epoch: int
    abs_corr_W: tuple[float, ...]
    Z: np.ndarray = field(metadata=NO_JSON)
    traversals: np.ndarray = field(metadata=NO_JSON)
    model: BetaVAE = field(metadata=NO_JSON)

    @property
    def val_recon_best(self) -> float:
        return self.history[self.best_epoch - 1].val_recon


def run_vae(X: np.ndarray, inputs: VaeInput, hidden: tuple[int, ...], W: np.ndarray, max_epochs: int,
            batch_size: int, seed: int, n_threads: int, note: Note = no_note) -> VaeResult:
    """Stage: fit a beta-VAE on X (B, n_in) in [0, 1] and read its latent space.

    W (B,) is only used to measure how well each latent axis orders the echoes by W.
    """
    vae = BetaVAE(hidden=hidden, beta=BETA, max_epochs=max_epochs, patience=PATIENCE, batch_size=batch_size,
                  random_state=seed, n_threads=n_threads)
    vae.fit(X.astype(np.float32), on_epoch=lambda r: note(f"epoch {r.epoch} val_recon {r.val_recon:.2f}"))
    Z = vae.transform(X)
    axes = np.eye(vae.latent_dim)
    traversals = np.stack([vae.decode(TRAVERSAL_GRID[:, None] * axes[i]) for i in range(vae.latent_dim)])
    corr = tuple(float(abs(np.corrcoef(Z[:, i], W)[0, 1])) for i in range(vae.latent_dim))
    return VaeResult(inputs=inputs, arch=(X.shape[1], *hidden, vae.latent_dim), history=tuple(vae.history_),
                     best_epoch=vae.best_epoch_, abs_corr_W=corr, Z=Z, traversals=traversals, model=vae)

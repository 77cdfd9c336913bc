"""A multitask 1-D convolutional network for echoes (ResNet-like, torch).

Input: complex records of every measurement of a protocol ->
:class:`~pyecho.learn.models.inputs.InputView` channels (phase/gain-referenced Re, Im, |M| of
each measurement, dead samples dropped, block-averaged in time) -> per measurement, the
training rows' mean record subtracted, then each channel divided by its RMS deviation from that
mean (one scale per channel: a per-time-point std would blow up the points where all echoes
agree, and measured worse on a 3 000-echo dataset).

Network: one branch per measurement (records of different lengths and meanings: a Hahn echo,
a CPMG train), each a stride-2 stem convolution, then one residual block per entry of
``widths`` (two convolutions of ``kernel_size``, batch norm, ReLU, stride 2, 1x1 projection
shortcut), then average pooling to ``pool_bins`` time bins -- the time grid is fixed, so
*where* a feature sits (before the echo, on it, after it) is kept. The branches' bins are
concatenated into a shared hidden layer and two heads:

* kernel: 3 logits, softmax over :data:`~pyecho.learn.models.targets.KERNEL_CLASSES`. P vs NP is
  *derived* from it (p_power = the probability of the long-range kernels), not a logit of its
  own: P vs NP is a coarsening of the kernel label, and one head keeps the two answers
  consistent;
* regression: every target (W, L, alpha_xy, alpha_z, and log10 T2 where the data have it),
  each standardised with the training rows' mean and std.

Loss = w_kernel · cross-entropy + w_regression · mean_t MSE_t (standardised targets), weights in
:class:`LossWeights`: by default 1 for each, so the classification and the regressions weigh
the same (cross-entropy at chance is ln 3 ≈ 1.1, each standardised MSE starts near 1).

Training: Adam, learning rate halved after 2 epochs without improvement, early stopping on the
validation loss of a stratified split carved from the rows given to :meth:`EchoCNN.fit` (never
anything else) with the best epoch's weights restored; optional noise augmentation redraws the
non-validation rows with fresh complex noise every epoch (:class:`~pyecho.data.records.NoisyRecords`).
Every minibatch's inputs are made from its own rows' records, and the input statistics and the
validation outputs in blocks of rows: memory-mapped records stay on disk, and training
never holds the inputs of an epoch, nor a noisy copy of the records.
Seeded; deterministic on the CPU for a given thread count; ``device="auto"`` uses CUDA when
present.

Saved as a directory: ``cnn.pt`` (the state dict, tensors only, loaded with
``weights_only=True``; the input statistics are buffers in it) and ``cnn.json`` (architecture,
input view, target scalers, class and target order, pyecho version). No pickle.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn

from pyecho.atomic import atomic_path
from pyecho.data.records import NoisyRecords, as_noisy_records, check_grid, check_snr_options, draw_snr
from pyecho.learn.models.inputs import InputView, check_fit_inputs
from pyecho.learn.models.model_files import ModelFileError, model_header, read_model_config
from pyecho.learn.models.targets import KERNEL_CLASSES, EchoPredictions, EchoTargets
from pyecho.learn.storage import blockwise_mean_std
from pyecho.physics.protocol import RecordGrid

#: ``format`` of the JSON header of a saved network
CNN_FORMAT = "pyecho.cnn"
WEIGHTS_FILE = "cnn.pt"
CONFIG_FILE = "cnn.json"
DEVICES = ("auto", "cpu", "cuda")
#: rows per forward pass in predict and validation, and per block of the input statistics
_EVAL_BATCH = 1024


@dataclass(frozen=True)
class LossWeights:
    """Weights of the multitask loss: ``kernel`` on the cross-entropy, ``regression`` on the mean
    MSE of the standardised regression targets (both >= 0, at least one > 0)."""

    kernel: float = 1.0
    regression: float = 1.0

    def __post_init__(self) -> None:
        values = asdict(self)
        bad = {k: v for k, v in values.items() if not (np.isfinite(v) and v >= 0)}
        if bad or not any(v > 0 for v in values.values()):
            raise ValueError(f"loss_weights: got {values}; allowed: finite values >= 0, at least one > 0")


@dataclass(frozen=True)
class EpochRecord:
    """One training epoch: mean losses per row (weighted multitask loss) and the validation
    kernel accuracy; seconds of wall time."""

    epoch: int
    train_loss: float
    val_loss: float
    val_kernel_accuracy: float
    learning_rate: float
    seconds: float


class _ResidualBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel_size: int):
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel_size, stride=2, padding=pad, bias=False), nn.BatchNorm1d(c_out), nn.ReLU(),
            nn.Conv1d(c_out, c_out, kernel_size, padding=pad, bias=False), nn.BatchNorm1d(c_out),
        )
        self.shortcut = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=2, bias=False), nn.BatchNorm1d(c_out))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class _Branch(nn.Module):
    """One measurement: input standardisation (buffers) -> stem -> residual blocks -> pooled bins."""

    def __init__(self, in_channels: int, n_timepoints: int, widths: tuple[int, ...], kernel_size: int, pool_bins: int):
        super().__init__()
        self.register_buffer("x_mean", torch.zeros(in_channels, n_timepoints))
        self.register_buffer("x_scale", torch.ones(in_channels, 1))
        layers = [nn.Conv1d(in_channels, widths[0], kernel_size, stride=2, padding=kernel_size // 2, bias=False),
                  nn.BatchNorm1d(widths[0]), nn.ReLU()]
        prev = widths[0]
        for w in widths:
            layers.append(_ResidualBlock(prev, w, kernel_size))
            prev = w
        layers += [nn.AdaptiveAvgPool1d(pool_bins), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.n_out = prev * pool_bins

    def forward(self, x):
        return self.body((x - self.x_mean) / self.x_scale)


class _Network(nn.Module):
    """One branch per measurement -> concatenated bins -> hidden layer -> kernel and regression heads."""

    def __init__(self, in_channels: int, n_timepoints: tuple[int, ...], widths: tuple[int, ...], kernel_size: int,
                 pool_bins: int, hidden: int, dropout: float, n_targets: int):
        super().__init__()
        self.branches = nn.ModuleList(_Branch(in_channels, T, widths, kernel_size, pool_bins) for T in n_timepoints)
        self.shared = nn.Sequential(nn.Linear(sum(b.n_out for b in self.branches), hidden), nn.ReLU(),
                                    nn.Dropout(dropout))
        self.kernel_head = nn.Linear(hidden, len(KERNEL_CLASSES))
        self.regression_head = nn.Linear(hidden, n_targets)

    def forward(self, xs):
        h = self.shared(torch.cat([branch(x) for branch, x in zip(self.branches, xs)], dim=1))
        return self.kernel_head(h), self.regression_head(h)


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: got {value!r}; allowed: an integer >= {minimum}")
    return int(value)


def _fraction(name: str, value, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value < hi:
        raise ValueError(f"{name}: got {value!r}; allowed: a number in [{lo}, {hi})")
    return float(value)


class EchoCNN:
    """Multitask 1-D ResNet: kernel class probabilities and W, L, alpha_xy, alpha_z from echoes.

    Parameters (keyword-only)
    ----------
    view : InputView -- channels and decimation of the input (default: Re, Im, |M|, decimate 2)
    widths : channels of the stem and of each residual block (each block halves the time axis)
    kernel_size : odd convolution length in (decimated) samples
    pool_bins : time bins kept after the last block
    hidden : width of the shared hidden layer
    dropout : dropout before the heads, in [0, 1)
    loss_weights : :class:`LossWeights`
    learning_rate : Adam's initial step size
    batch_size : rows per step
    max_epochs : hard cap on epochs (the run-time budget)
    patience : epochs without a better validation loss before stopping
    validation_fraction : share of the fit rows held out (stratified by kernel) for early stopping
    noise_snr_choices / noise_snr_range : optional per-epoch noise augmentation of the training
        rows (not the validation rows): SNRs drawn uniformly from the choices (inf: a clean row)
        or log-uniformly from the range (definition: :func:`~pyecho.data.records.add_complex_noise`);
        at most one of them
    device : "auto" (CUDA when available, else CPU), "cpu" or "cuda"
    n_threads : torch CPU threads during fit/predict (None: leave torch's setting); on a machine
        shared with other jobs, more threads than free cores made each epoch ~10x slower
    random_state : seed of the validation split, initialisation, batch order and noise

    Attributes after fit
    --------------------
    history_ : tuple of :class:`EpochRecord`
    best_epoch_ : epoch whose weights were kept
    stopped_early_ : True if patience ended training before max_epochs
    """

    def __init__(self, *, view: InputView = InputView(), widths: tuple[int, ...] = (32, 48, 64),
                 kernel_size: int = 7, pool_bins: int = 8, hidden: int = 64, dropout: float = 0.1,
                 loss_weights: LossWeights = LossWeights(), learning_rate: float = 1e-3, batch_size: int = 64,
                 max_epochs: int = 40, patience: int = 6, validation_fraction: float = 0.1,
                 noise_snr_choices: tuple[float, ...] | None = None,
                 noise_snr_range: tuple[float, float] | None = None,
                 device: str = "auto", n_threads: int | None = None, random_state: int = 0):
        if not isinstance(view, InputView):
            raise ValueError(f"view: got {type(view).__name__}; allowed: an InputView")
        if not isinstance(loss_weights, LossWeights):
            raise ValueError(f"loss_weights: got {type(loss_weights).__name__}; allowed: a LossWeights")
        widths = tuple(widths)
        if not widths:
            raise ValueError("widths: got (); allowed: one or more integers >= 1")
        for w in widths:
            _positive_int("widths", w)
        kernel_size = _positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: got {kernel_size}; allowed: an odd integer >= 1")
        snr_choices, snr_range = check_snr_options(noise_snr_choices, noise_snr_range, required=False,
                                                   prefix="noise_")
        if device not in DEVICES:
            raise ValueError(f"device: got {device!r}; allowed: {', '.join(DEVICES)}")
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device: got 'cuda', but torch sees no CUDA device here; use 'auto' or 'cpu'")
        if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate < np.inf):
            raise ValueError(f"learning_rate: got {learning_rate!r}; allowed: a number > 0")
        self.view = view
        self.widths = widths
        self.kernel_size = kernel_size
        self.pool_bins = _positive_int("pool_bins", pool_bins)
        self.hidden = _positive_int("hidden", hidden)
        self.dropout = _fraction("dropout", dropout, 0.0, 1.0)
        self.loss_weights = loss_weights
        self.learning_rate = float(learning_rate)
        self.batch_size = _positive_int("batch_size", batch_size, 2)
        self.max_epochs = _positive_int("max_epochs", max_epochs)
        self.patience = _positive_int("patience", patience)
        self.validation_fraction = _fraction("validation_fraction", validation_fraction, 0.01, 0.9)
        self.noise_snr_choices, self.noise_snr_range = snr_choices, snr_range
        self.device = device
        self.n_threads = None if n_threads is None else _positive_int("n_threads", n_threads)
        self.random_state = _positive_int("random_state", random_state, 0)

    # -- helpers --------------------------------------------------------------------------
    def _torch_device(self) -> torch.device:
        return torch.device("cuda" if self.device == "cuda" or (self.device == "auto" and torch.cuda.is_available())
                            else "cpu")

    def _with_threads(self, fn, *args):
        old = torch.get_num_threads()
        if self.n_threads:
            torch.set_num_threads(self.n_threads)
        try:
            return fn(*args)
        finally:
            torch.set_num_threads(old)

    def _records(self, M) -> NoisyRecords:
        X = as_noisy_records(M)
        if hasattr(self, "network_"):
            check_grid(X.records, self.grid_)
        return X

    def _outputs(self, R: NoisyRecords) -> tuple[torch.Tensor, torch.Tensor]:
        """Network outputs (kernel logits, standardised regression) for the rows of R, on the
        CPU; their inputs made :data:`_EVAL_BATCH` rows at a time."""
        dev = next(self.network_.parameters()).device
        self.network_.eval()
        logits, reg = [], []
        with torch.no_grad():
            for block in R.blocks(_EVAL_BATCH):
                lo, re = self.network_([torch.from_numpy(X).to(dev) for X in self.view.transform(block, self.grid_)])
                logits.append(lo.cpu())
                reg.append(re.cpu())
        return torch.cat(logits), torch.cat(reg)

    def _input_statistics(self, R: NoisyRecords) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per measurement, the mean record (C, T') of the rows of R and each channel's RMS
        deviation from it (C, 1), float32; one pass over blocks of :data:`_EVAL_BATCH` rows
        (:func:`~pyecho.learn.storage.blockwise_mean_std` of every channel and time point)."""
        shapes = [(len(self.view.channel_names), T) for T in self.view.n_timepoints(self.grid_)]
        flat = (np.concatenate([X.reshape(len(X), -1) for X in self.view.transform(block, self.grid_)], axis=1)
                for block in R.blocks(_EVAL_BATCH))
        _, mean, std = blockwise_mean_std(flat)
        out, start = [], 0
        for C, T in shapes:
            m = mean[start:start + C * T].reshape(C, T)
            # the mean square deviation of a channel over its time points is the mean of their variances
            scale = np.sqrt((std[start:start + C * T].reshape(C, T) ** 2).mean(axis=1))[:, None]
            out.append((m.astype(np.float32), np.where(scale > 0, scale, 1.0).astype(np.float32)))
            start += C * T
        return out

    # -- fit ------------------------------------------------------------------------------
    def fit(self, M, targets: EchoTargets, grid: RecordGrid) -> "EchoCNN":
        """Train on the complex records M of protocol ``grid`` and their targets (B rows).

        A stratified ``validation_fraction`` of these rows is held out for early stopping.
        """
        R = check_fit_inputs(M, targets, grid)
        return self._with_threads(self._fit, R, targets, grid)

    def _fit(self, R: NoisyRecords, targets: EchoTargets, grid: RecordGrid) -> "EchoCNN":
        rng = np.random.default_rng(self.random_state)
        torch.manual_seed(self.random_state)
        gen = torch.Generator().manual_seed(self.random_state)
        try:
            fit_rows, val_rows = train_test_split(np.arange(len(targets)), test_size=self.validation_fraction,
                                                  random_state=self.random_state, stratify=targets.kernel)
        except ValueError as exc:
            raise ValueError(f"validation_fraction: cannot carve a stratified validation split ({exc})") from None
        fit_rows, val_rows = np.sort(fit_rows), np.sort(val_rows)
        augment = self.noise_snr_choices is not None or self.noise_snr_range is not None
        if augment and np.isfinite(R.snr).any():
            raise ValueError("M: noise augmentation redraws the noise of clean records; got records with noise "
                             "already (fit on the clean ones)")
        self.grid_ = grid
        fit_R, val_R = R.take(fit_rows), R.take(val_rows)
        Y = targets.regression()
        self.targets_ = targets.targets
        self.y_mean_, self.y_std_ = Y[fit_rows].mean(axis=0), Y[fit_rows].std(axis=0)
        self.y_std_ = np.where(self.y_std_ > 0, self.y_std_, 1.0)
        Ys = ((Y - self.y_mean_) / self.y_std_).astype(np.float32)
        k = targets.kernel_index
        dev = self._torch_device()
        self.network_ = _Network(len(self.view.channel_names), self.view.n_timepoints(grid), self.widths,
                                 self.kernel_size, self.pool_bins, self.hidden, self.dropout, len(self.targets_))
        for branch, (mean, scale) in zip(self.network_.branches, self._input_statistics(fit_R)):
            branch.x_mean.copy_(torch.from_numpy(mean))
            branch.x_scale.copy_(torch.from_numpy(scale))
        self.network_.to(dev)
        w_kernel, w_reg = self.loss_weights.kernel, self.loss_weights.regression

        def loss_fn(logits, reg, kb, yb):
            ce = nn.functional.cross_entropy(logits, kb, reduction="none")
            return w_kernel * ce + w_reg * ((reg - yb) ** 2).mean(dim=1)  # per row

        opt = torch.optim.Adam(self.network_.parameters(), lr=self.learning_rate)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        k_fit, y_fit = torch.from_numpy(k[fit_rows]), torch.from_numpy(Ys[fit_rows])
        k_val, y_val = torch.from_numpy(k[val_rows]), torch.from_numpy(Ys[val_rows])
        best, best_state, bad, history = np.inf, None, 0, []
        self.stopped_early_ = False
        for epoch in range(1, self.max_epochs + 1):
            t0 = time.perf_counter()
            # each minibatch's inputs are made from its rows' records: an epoch never holds its inputs
            if augment:
                snr = draw_snr(rng, len(fit_rows), snr_choices=self.noise_snr_choices, snr_range=self.noise_snr_range)
                rows = NoisyRecords(R.records, R.source[fit_rows], snr, epoch * len(fit_rows) + np.arange(len(fit_rows)),
                                    self.random_state)
            else:
                rows = fit_R
            self.network_.train()
            order = torch.randperm(len(fit_rows), generator=gen)
            if order.numel() % self.batch_size == 1:  # batch norm cannot train on one row
                order = order[:-1]
            total = 0.0
            for i in range(0, order.numel(), self.batch_size):
                idx = order[i:i + self.batch_size]
                X = self.view.transform(rows.take(idx.numpy()), grid)
                logits, reg = self.network_([torch.from_numpy(x).to(dev) for x in X])
                loss = loss_fn(logits, reg, k_fit[idx].to(dev), y_fit[idx].to(dev)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * idx.numel()
            logits, reg = self._outputs(val_R)
            val_loss = float(loss_fn(logits.to(dev), reg.to(dev), k_val.to(dev), y_val.to(dev)).mean())
            acc = float((logits.argmax(dim=1) == k_val).float().mean())
            history.append(EpochRecord(epoch, total / order.numel(), val_loss, acc, opt.param_groups[0]["lr"],
                                       time.perf_counter() - t0))
            sched.step(val_loss)
            if val_loss < best:
                best, bad, self.best_epoch_ = val_loss, 0, epoch
                best_state = {n: v.detach().clone() for n, v in self.network_.state_dict().items()}
            else:
                bad += 1
                if bad >= self.patience:
                    self.stopped_early_ = epoch < self.max_epochs
                    break
        self.network_.load_state_dict(best_state)
        self.network_.eval()
        self.history_ = tuple(history)
        return self

    # -- predict --------------------------------------------------------------------------
    def predict(self, M) -> EchoPredictions:
        """Kernel probabilities and every target (its own units) for the records M."""
        if not hasattr(self, "network_"):
            raise ValueError("EchoCNN: not fitted; call fit() or EchoCNN.load() first")
        logits, reg = self._with_threads(self._outputs, self._records(M))
        proba = torch.softmax(logits.double(), dim=1).numpy()
        Y = reg.double().numpy() * self.y_std_ + self.y_mean_
        return EchoPredictions.from_learning_scale(proba, Y, self.targets_)

    # -- save / load ----------------------------------------------------------------------
    def _config(self) -> dict:
        return {
            **model_header(CNN_FORMAT),
            "architecture": {"in_channels": int(self.network_.branches[0].x_mean.shape[0]),
                             "n_timepoints": [int(b.x_mean.shape[1]) for b in self.network_.branches],
                             "widths": list(self.widths), "kernel_size": self.kernel_size,
                             "pool_bins": self.pool_bins, "hidden": self.hidden, "dropout": self.dropout},
            "grid": self.grid_.to_dict(),
            "targets": list(self.targets_),
            "view": self.view.to_dict(),
            "input_normalisation": "per measurement, (x - x_mean) / x_scale: training rows' mean record (channel, "
                                   "time) and each channel's RMS deviation from it; buffers branches.K.x_mean, "
                                   "branches.K.x_scale in the state dict",
            "target_scaler": {"mean": self.y_mean_.tolist(), "std": self.y_std_.tolist()},
            "training": {"random_state": self.random_state, "best_epoch": self.best_epoch_,
                         "epochs_run": len(self.history_), "stopped_early": self.stopped_early_,
                         "loss_weights": asdict(self.loss_weights)},
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``cnn.pt`` and ``cnn.json`` into ``directory`` (created); each file atomically."""
        if not hasattr(self, "network_"):
            raise ValueError("EchoCNN: not fitted; nothing to save")
        d = Path(directory)
        state = {n: v.detach().cpu().contiguous() for n, v in self.network_.state_dict().items()}
        with atomic_path(d / WEIGHTS_FILE) as tmp_pt, atomic_path(d / CONFIG_FILE) as tmp_json:
            torch.save(state, tmp_pt)
            tmp_json.write_text(json.dumps(self._config(), indent=2))
        return d

    @classmethod
    def load(cls, directory: str | Path, *, device: str = "auto", n_threads: int | None = None) -> "EchoCNN":
        """A fitted network from a directory written by :meth:`save`.

        Raises ModelFileError (one line naming the file) for a missing file, another pyecho
        version or format, or weights that do not match the stored architecture.
        """
        cfg_path, pt_path, cfg = read_model_config(directory, CONFIG_FILE, WEIGHTS_FILE, CNN_FORMAT,
                                                   "EchoCNN.save")
        try:
            arch = cfg["architecture"]
            model = cls(view=InputView.from_dict(cfg["view"]), widths=tuple(arch["widths"]),
                        kernel_size=arch["kernel_size"], pool_bins=arch["pool_bins"], hidden=arch["hidden"],
                        dropout=arch["dropout"], device=device, n_threads=n_threads,
                        random_state=cfg["training"]["random_state"])
            targets = tuple(str(t) for t in cfg["targets"])
            network = _Network(arch["in_channels"], tuple(arch["n_timepoints"]), model.widths, model.kernel_size,
                               model.pool_bins, model.hidden, model.dropout, len(targets))
            y_mean = np.asarray(cfg["target_scaler"]["mean"], dtype=float)
            y_std = np.asarray(cfg["target_scaler"]["std"], dtype=float)
            grid = RecordGrid.from_dict(cfg["grid"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{cfg_path}: incomplete or invalid config ({exc!r})") from None
        try:
            state = torch.load(pt_path, map_location="cpu", weights_only=True)
            network.load_state_dict(state, strict=True)
        except Exception as exc:  # noqa: BLE001 -- any unusable weights file is one user error
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"{pt_path}: does not match {CONFIG_FILE} ({first})") from None
        if y_mean.shape != (len(targets),) or y_std.shape != (len(targets),):
            raise ModelFileError(f"{cfg_path}: target_scaler needs {len(targets)} means and stds")
        model.network_ = network.to(model._torch_device()).eval()
        model.y_mean_, model.y_std_, model.grid_, model.targets_ = y_mean, y_std, grid, targets
        model.best_epoch_ = cfg["training"].get("best_epoch")
        model.stopped_early_ = cfg["training"].get("stopped_early")
        model.history_ = ()
        return model

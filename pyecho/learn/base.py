"""The learning layer's shared vocabulary: names, the data every stage reads, the split, scores.

Every stage of `pyecho learn` is a function from these types to a frozen result dataclass; the
collected results (:class:`pyecho.learn.results.LearnResults`) feed the metrics, figures and
report modules. A new model plugs in by returning :class:`ModelScore` records (one per task)
from a ``model_scores()`` method of its result: the comparison tables pick them up unchanged.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields, replace
from enum import Enum, StrEnum
from typing import Callable, Generic, Iterator, Mapping, Sequence, TypeVar

import numpy as np
import polars as pl
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split

from pyecho.data.store import DatasetError
from pyecho.errors import ParameterError
from pyecho.physics.params import steps_per_tau
from pyecho.physics.protocol import DEFAULT_DEAD_TIME_US, Measurement, Protocol, RecordGrid

#: ``field(metadata=NO_JSON)`` keeps a field (arrays, fitted models) out of metrics.json
NO_JSON = {"json": False}

#: a stage's progress callback: receives a short status text
Note = Callable[[str], None]


def no_note(_: str) -> None:
    """The default progress callback: ignore."""


class FeatureSet(StrEnum):
    """The paper's features of the |M| window (features.py)."""

    POINTWISE = "pointwise"
    POLYNOMIAL = "polynomial"


FEATURE_SETS: tuple[FeatureSet, ...] = tuple(FeatureSet)
#: the paper's abbreviations (PT, PF)
FEATURE_TAGS: dict[FeatureSet, str] = {FeatureSet.POINTWISE: "PT", FeatureSet.POLYNOMIAL: "PF"}


class Target(StrEnum):
    """Regression targets; the value is the name used in files and tables."""

    W = "W"
    L = "L"
    ALPHA_XY = "alpha_xy"
    ALPHA_Z = "alpha_z"
    T2 = "t2_us"


#: the targets of every dataset; T2 joins them where the dataset draws it per sample
COUPLING_TARGETS: tuple[Target, ...] = (Target.W, Target.L, Target.ALPHA_XY, Target.ALPHA_Z)
TARGETS: tuple[Target, ...] = tuple(Target)
TARGET_UNITS: dict[Target, str] = {Target.W: "rad/us", Target.L: "lattice spacings",
                                   Target.ALPHA_XY: "rad/us", Target.ALPHA_Z: "rad/us", Target.T2: "us"}
#: targets learned, calibrated and scored as log10 of the value: T2 spans a decade (a
#: log-uniform prior), and its uncertainty is a factor, not an offset
LOG_TARGETS: frozenset[Target] = frozenset({Target.T2})


def to_learning_scale(target: str, values) -> np.ndarray:
    """``values`` of ``target`` on the scale models learn and intervals are calibrated on."""
    v = np.asarray(values, dtype=float)
    return np.log10(v) if Target(target) in LOG_TARGETS else v


def from_learning_scale(target: str, values) -> np.ndarray:
    """Inverse of :func:`to_learning_scale`."""
    v = np.asarray(values, dtype=float)
    return 10.0 ** v if Target(target) in LOG_TARGETS else v


def target_title(target: str) -> str:
    """How tables name a target's score scale: "log10 t2_us" for a log target."""
    return f"log10 {target}" if Target(target) in LOG_TARGETS else str(target)


class Subset(StrEnum):
    """Rows a regression is trained and tested on: all kernels, power law only, the others."""

    ALL = "all"
    P = "P"
    NP = "NP"


SUBSETS: tuple[Subset, ...] = tuple(Subset)


class Task(StrEnum):
    """Classification tasks (regression tasks are named by their :class:`Target`)."""

    PVNP = "pvnp"        # power law (P) vs gaussian + RKKY (NP)
    KERNEL3 = "kernel3"  # gaussian / power / rkky


KERNELS: tuple[str, ...] = ("gaussian", "power", "rkky")
POWER_KERNEL = "power"
#: the P-vs-NP class labels; P (power law) is the positive class, last
RANGE_NP, RANGE_P = "NP", "P"
TASK_CLASSES: dict[Task, tuple[str, ...]] = {Task.PVNP: (RANGE_NP, RANGE_P), Task.KERNEL3: KERNELS}
#: the class whose F1 is "F1 of the power-law class"
POWER_CLASS: dict[Task, str] = {Task.PVNP: RANGE_P, Task.KERNEL3: POWER_KERNEL}
TASK_TITLES: dict[str, str] = {Task.PVNP: "P vs NP", Task.KERNEL3: "3-class kernel",
                               **{t: f"R² {target_title(t)}" for t in TARGETS}}


class ZooModel(StrEnum):
    """The models of the paper's Table I."""

    LOGISTIC = "Logistic regression"
    KNN = "K-nearest neighbors"
    LINEAR_SVM = "Support vector machine (linear)"
    KERNEL_SVM = "Kernel SVM (RBF)"
    SGD = "SGD classifier"
    DECISION_TREE = "Decision tree"
    RANDOM_FOREST = "Random forest"


class Evaluation(StrEnum):
    """How a score was obtained; every comparison table says which."""

    PAPER = "paper's method, leak-free (SMOTE on the training part only)"
    BEYOND = "beyond the paper"
    LEAKED = "the paper's leak reproduced (SMOTE on all rows before the split)"


class Metric(StrEnum):
    """Score names: the fields of :class:`ClassScores` and :class:`RegScores`, and two the paper quotes."""

    F1_POWER = "f1_power"
    F1_WEIGHTED = "f1_weighted"
    F1_MACRO = "f1_macro"
    ACCURACY = "accuracy"
    R2 = "r2"
    MAE = "mae"
    F1_UNSTATED = "f1_unstated"  # an F1 quoted without saying which average (the paper, sometimes)
    P_ERROR = "p_error"          # fraction of the power-law echoes classified NP


METRIC_TITLES: dict[Metric, str] = {
    Metric.F1_POWER: "F1 of the power-law class",
    Metric.F1_WEIGHTED: "weighted F1",
    Metric.F1_MACRO: "macro F1",
    Metric.ACCURACY: "accuracy",
    Metric.R2: "R²",
    Metric.MAE: "MAE",
    Metric.F1_UNSTATED: "F1, average not stated",
    Metric.P_ERROR: "fraction of P echoes classified NP",
}


# --------------------------------------------------------------------------- budget
@dataclass(frozen=True)
class Budget:
    """Model sizes; ``FULL`` is designed for the paper preset (15 000 x 1875) in < 30 min on 2 cores."""

    rf_trees: int = 200            # headline / saved random forests
    aux_trees: int = 60            # CV folds, pruning curve, W-screening bins, non-headline regressions
    cv_folds: int = 5              # CV of the headline P-vs-NP models
    prune_cv_folds: int = 0        # CV at each pruning step (0: test scores and OOB only, for run time)
    svm_max_train: int = 4000      # RBF SVM trained on a stratified subsample of this many rows
    knn_max_train: int | None = None
    vae_full_hidden: tuple[int, ...] = (512, 128, 16)
    vae_window_hidden: tuple[int, ...] = (128, 32, 16)
    vae_max_epochs: int = 60
    vae_batch: int = 128
    kmeans_max_samples: int = 5000
    test_size: float = 0.2
    # beyond the paper (pyecho.learn.models.candidates)
    candidates: tuple[str, ...] = ("linear", "minirocket", "cnn")
    candidate_decimate: int = 2    # block-average the series in time before the candidates
    candidate_max_points: int = 1024  # at most this many time points per measurement reach a candidate
    dead_time_us: float = DEFAULT_DEAD_TIME_US  # the candidates never read the samples this soon after a pulse (µs)
    calibration_copies: int = 3    # each calibration row is also noised this many times (SNRs of the training range)
    trust_per_kernel: int = 100    # fresh samples per kernel simulated to check the predictor as a user meets it
    design_max_samples: int = 3000  # the measurement study's linear probe reads at most this many samples
    # the Cramér-Rao bound the models are set against (pyecho.learn.design.limits): points per
    # family, and detuning draws with site groups and plain ones (docs/fit.md: more is slower
    # and less optimistic)
    limit_points: int = 2
    limit_draws: int = 8
    limit_more_draws: int = 64
    rocket_kernels: int = 4_000    # MiniRocket kernels: ~4 000 features keep its ridge path to ~1 min at 20 000 rows
    cnn_max_epochs: int = 40
    cnn_patience: int = 6
    validation_size: float = 0.125  # of the training rows: chooses the headline model per task
    calibration_size: float = 0.125  # of the training rows: conformal intervals, temperature, domain guard
    curve_sizes: tuple[int, ...] = (1000, 2000, 4000, 8000, 12000)  # --learning-curve: training rows per point
    # the paper's pipeline holds its features, forests and VAE in memory: on a larger dataset it
    # reads a stratified subsample of this many samples (the paper's own dataset size)
    paper_max_samples: int = 15_000


FULL = Budget()
QUICK = Budget(rf_trees=40, aux_trees=20, cv_folds=3, prune_cv_folds=2, svm_max_train=500,
               vae_full_hidden=(64, 16), vae_window_hidden=(32, 16), vae_max_epochs=8, vae_batch=64,
               kmeans_max_samples=1000, rocket_kernels=2_000, cnn_max_epochs=8, cnn_patience=3,
               validation_size=0.15, calibration_size=0.2, curve_sizes=(40, 80, 120), trust_per_kernel=20,
               limit_points=1, limit_draws=2, limit_more_draws=0)


# --------------------------------------------------------------------------- data
T = TypeVar("T")


@dataclass(frozen=True)
class ByFeatureSet(Generic[T]):
    """One value per :class:`FeatureSet`."""

    pointwise: T
    polynomial: T

    def __getitem__(self, fs: FeatureSet) -> T:
        return getattr(self, FeatureSet(fs).value)

    def items(self) -> Iterator[tuple[FeatureSet, T]]:
        return ((fs, self[fs]) for fs in FEATURE_SETS)

    @classmethod
    def build(cls, make: Callable[[FeatureSet], T]) -> "ByFeatureSet[T]":
        """``make(fs)`` for each feature set, in order."""
        return cls(**{fs.value: make(fs) for fs in FEATURE_SETS})


#: label columns learning needs, as named in the dataset
LABEL_COLUMNS: tuple[str, ...] = ("kernel", "is_power", "W", "L", "alpha_x", "alpha_z", "t2_us")
#: the dataset column of each target
TARGET_COLUMNS: dict[Target, str] = {Target.W: "W", Target.L: "L", Target.ALPHA_XY: "alpha_x",
                                     Target.ALPHA_Z: "alpha_z", Target.T2: "t2_us"}


@dataclass(frozen=True)
class Labels:
    """The labels of every sample, as arrays (B,).

    kernel : str; is_power : bool; W, alpha_xy (= alpha_x = alpha_y), alpha_z : float, rad/µs;
    L : float, lattice spacings; t2_us : float, µs (NaN where the sample has no T2);
    kernel_param : float, the kernel's xi, p or gamma (NaN where the dataset does not say).
    """

    kernel: np.ndarray
    is_power: np.ndarray
    W: np.ndarray
    L: np.ndarray
    alpha_xy: np.ndarray
    alpha_z: np.ndarray
    t2_us: np.ndarray
    kernel_param: np.ndarray

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> "Labels":
        missing = sorted(set(LABEL_COLUMNS) - {"t2_us"} - set(frame.columns))
        if missing:
            raise DatasetError(f"dataset labels lack columns {missing}; expected {list(LABEL_COLUMNS)}")
        optional = {c: (frame[c].cast(pl.Float64).fill_null(np.nan).to_numpy() if c in frame.columns
                        else np.full(frame.height, np.nan)) for c in ("t2_us", "kernel_param")}
        return cls(kernel=frame["kernel"].to_numpy().astype(str),
                   is_power=frame["is_power"].to_numpy().astype(bool),
                   W=frame["W"].to_numpy().astype(float), L=frame["L"].to_numpy().astype(float),
                   alpha_xy=frame["alpha_x"].to_numpy().astype(float),
                   alpha_z=frame["alpha_z"].to_numpy().astype(float), t2_us=optional["t2_us"],
                   kernel_param=optional["kernel_param"])

    def target(self, target: Target) -> np.ndarray:
        """The regression target's values (B,), in its units."""
        return getattr(self, Target(target).value)

    @property
    def targets(self) -> tuple[Target, ...]:
        """The targets these labels can teach: the couplings, and T2 where it varies between samples."""
        t2 = self.t2_us
        varies = bool(np.all(np.isfinite(t2)) and np.ptp(t2) > 0)
        return COUPLING_TARGETS + ((Target.T2,) if varies else ())

    def classes(self, task: Task) -> np.ndarray:
        """The class label of every echo for ``task`` (B,): P/NP, or the kernel name."""
        if task == Task.PVNP:
            return np.where(self.is_power, RANGE_P, RANGE_NP)
        return self.kernel


@dataclass(frozen=True)
class LearnData:
    """What every stage reads: the complex records of every measurement and the labels.

    Attributes
    ----------
    records : tuple of complex arrays, one per measurement of ``grid.protocol``, each (B, T_k)
    grid : :class:`~pyecho.physics.protocol.RecordGrid` -- the protocol and time step
    labels : :class:`Labels` (one row per sample)
    metadata : the dataset's scalar metadata (engine, lattice, ...)

    The paper's route reads the Hahn echo at 90 degrees (:attr:`M`): the first measurement at
    90 degrees whose record begins with one (``hahn`` or ``cpmg:N``), cut to 3 tau.
    """

    records: tuple[np.ndarray, ...]
    grid: RecordGrid
    labels: Labels
    metadata: Mapping[str, object] = field(default_factory=dict)

    #: learning needs at least this many samples
    MIN_SAMPLES = 20

    @property
    def protocol(self) -> Protocol:
        return self.grid.protocol

    @property
    def targets(self) -> tuple[Target, ...]:
        return self.labels.targets

    @property
    def n_samples(self) -> int:
        return self.records[0].shape[0]

    @property
    def hahn_source(self) -> tuple[int, int]:
        """(measurement index, samples) of the 90° Hahn echo inside the records; DatasetError
        naming the protocol if none holds one."""
        found = self.protocol.hahn_90()
        if found is not None:
            return found[0], found[1].n_samples(self.grid.dt_us)
        raise DatasetError(f"the protocol {self.protocol.text} holds no Hahn echo at 90 degrees (hahn@90 or "
                           "cpmg:N@90), which the paper's |M| pipeline reads; add one, e.g. hahn@90")

    @property
    def hahn_measurement(self) -> Measurement:
        k, _ = self.hahn_source
        return Measurement("hahn", self.protocol[k].theta, self.protocol[k].tau_us)

    @property
    def M(self) -> np.ndarray:
        """The 90° Hahn echoes, complex (B, T): the paper's |M| route reads these."""
        k, n = self.hahn_source
        return self.records[k][:, :n]

    @property
    def n_times(self) -> int:
        """Samples of the 90° Hahn echo."""
        return self.hahn_source[1]

    @property
    def t_us(self) -> np.ndarray:
        """Sample times of the 90° Hahn echo (µs)."""
        return self.grid.dt_us * np.arange(1, self.n_times + 1)

    @property
    def echo_index(self) -> int:
        """Sample of the 90° Hahn echo's top (t = 2 tau)."""
        return 2 * steps_per_tau(self.hahn_measurement.tau_us, self.grid.dt_us) - 1

    def hahn_only(self) -> "LearnData":
        """The same samples with the 90° Hahn echo as their only measurement (the paper's protocol)."""
        return LearnData(records=(self.M,), grid=RecordGrid(Protocol((self.hahn_measurement,)), self.grid.dt_us),
                         labels=self.labels, metadata=self.metadata)

    def take(self, rows) -> "LearnData":
        """The samples ``rows`` (int array), every measurement."""
        rows = np.asarray(rows)
        return LearnData(records=tuple(r[rows] for r in self.records), grid=self.grid,
                         labels=Labels(**{f.name: getattr(self.labels, f.name)[rows] for f in fields(Labels)}),
                         metadata=self.metadata)

    def select(self, measurements) -> "LearnData":
        """The same samples measured only by ``measurements`` (indices into the protocol, in order)."""
        idx = tuple(int(k) for k in measurements)
        return LearnData(records=tuple(self.records[k] for k in idx),
                         grid=RecordGrid(Protocol(tuple(self.protocol[k] for k in idx)), self.grid.dt_us),
                         labels=self.labels, metadata=self.metadata)

    @classmethod
    def from_dataset(cls, ds) -> "LearnData":
        """From a :class:`pyecho.data.store.EchoDataset` (or anything with its ``records``,
        ``protocol``, ``dt_us``, ``labels`` and ``metadata``). Raises DatasetError for fewer than
        20 samples or a kernel family that is missing."""
        meta = dict(getattr(ds, "metadata", {}) or {})
        grid = RecordGrid(ds.protocol, ds.dt_us)
        records = tuple(np.asarray(r) for r in ds.records)
        if len(records) != len(grid.protocol) or any(r.shape != (records[0].shape[0], T)
                                                     for r, T in zip(records, grid.lengths)):
            raise DatasetError(f"dataset records have shapes {[r.shape for r in records]}; the protocol "
                               f"{grid.protocol.text} needs (B, T) with T = {list(grid.lengths)}")
        labels = Labels.from_frame(ds.labels)
        n = records[0].shape[0]
        if n < cls.MIN_SAMPLES:
            raise DatasetError(f"the dataset has {n} samples; learning needs at least {cls.MIN_SAMPLES}")
        for k in KERNELS:
            if not np.any(labels.kernel == k):
                raise DatasetError(f"the dataset has no {k!r} echoes; learning needs all of {list(KERNELS)}")
        scalars = {k: v for k, v in meta.items() if isinstance(v, (int, float, str, bool)) or v is None}
        return cls(records=records, grid=grid, labels=labels, metadata=scalars)


@dataclass(frozen=True)
class Split:
    """A stratified train/test split of the echoes; ``seed`` also seeds every model fitted on it."""

    train: np.ndarray
    test: np.ndarray
    seed: int
    test_size: float
    stratified_by: str = "kernel"

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def n_test(self) -> int:
        return len(self.test)

    def __json__(self) -> dict:
        return {"seed": self.seed, "test_size": self.test_size, "stratified_by": self.stratified_by,
                "n_train": self.n_train, "n_test": self.n_test}

    def subsample(self, kernel: np.ndarray, max_samples: int) -> np.ndarray | None:
        """At most ``max_samples`` of the split's rows (sorted), drawn stratified by ``kernel``
        from the train and the test rows in the split's proportion, so their test rows are
        test rows here; None when the split holds no more than that."""
        if self.n_train + self.n_test <= max_samples:
            return None
        n_test = max(1, round(max_samples * self.test_size))
        picked = [train_test_split(rows, train_size=n, random_state=self.seed, stratify=kernel[rows])[0]
                  for rows, n in ((self.train, max_samples - n_test), (self.test, n_test))]
        return np.sort(np.concatenate(picked))

    def restrict(self, rows: np.ndarray) -> "Split":
        """This split on the samples ``rows`` (sorted), renumbered as their positions there."""
        return replace(self, train=np.flatnonzero(np.isin(rows, self.train)), test=np.flatnonzero(np.isin(rows, self.test)))


def make_split(labels: Labels, test_size: float, seed: int) -> Split:
    """Stratified (by kernel) split of ``range(B)``: train and test indices, sorted."""
    if not 0 < test_size < 1:
        raise ParameterError(f"test_size: got {test_size}; must be in (0, 1)")
    idx = np.arange(len(labels.kernel))
    tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=labels.kernel)
    return Split(train=np.sort(tr), test=np.sort(te), seed=int(seed), test_size=float(test_size))


# --------------------------------------------------------------------------- scores
S = TypeVar("S", "ClassScores", "RegScores")


@dataclass(frozen=True)
class ClassScores:
    """The four classification scores, always side by side (test rows).

    f1_power : F1 of the power-law class (P, or "power" in the 3-class problem)
    f1_weighted : F1 averaged over the classes, weighted by their test counts
    f1_macro : unweighted mean F1 over the classes
    accuracy : fraction of test rows classified right
    """

    f1_power: float
    f1_weighted: float
    f1_macro: float
    accuracy: float

    @classmethod
    def of(cls, y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], power_class: str) -> "ClassScores":
        """Score predictions ``y_pred`` of true labels ``y_true`` over ``classes``."""
        classes = list(classes)
        return cls(
            f1_power=float(f1_score(y_true, y_pred, labels=[power_class], average="macro", zero_division=0)),
            f1_weighted=float(f1_score(y_true, y_pred, labels=classes, average="weighted", zero_division=0)),
            f1_macro=float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
            accuracy=float(accuracy_score(y_true, y_pred)),
        )


@dataclass(frozen=True)
class RegScores:
    """Regression scores on the test rows: R² and mean absolute error (units of the target)."""

    r2: float
    mae: float

    @classmethod
    def of(cls, y_true: np.ndarray, y_pred: np.ndarray) -> "RegScores":
        return cls(r2=float(r2_score(y_true, y_pred)), mae=float(mean_absolute_error(y_true, y_pred)))


def mean_std(items: Sequence[S]) -> tuple[S, S | None]:
    """Field-wise mean and standard deviation (ddof 0) of scores; std is None for one item."""
    kind = type(items[0])
    cols = {f.name: np.array([getattr(s, f.name) for s in items], dtype=float) for f in fields(kind)}
    mean = kind(**{k: float(v.mean()) for k, v in cols.items()})
    std = kind(**{k: float(v.std()) for k, v in cols.items()}) if len(items) > 1 else None
    return mean, std


@dataclass(frozen=True)
class ModelScore:
    """One model on one task: the row of the report's comparison tables.

    model : what was fitted ("random forest", ...); task : a :class:`Task` or :class:`Target`
    value; inputs : what the model saw; evaluation : an :class:`Evaluation` value;
    scores : mean over ``seeds``; spread : their standard deviation (None for one seed);
    n_train / n_test : rows of one split.
    """

    model: str
    task: str
    inputs: str
    evaluation: str
    scores: ClassScores | RegScores
    spread: ClassScores | RegScores | None
    seeds: tuple[int, ...]
    n_train: int
    n_test: int

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.model, self.task, self.inputs, self.evaluation

    @classmethod
    def single(cls, model: str, task: str, inputs: str, evaluation: str, scores: ClassScores | RegScores,
               seed: int, n_train: int, n_test: int) -> "ModelScore":
        """The score of one fit (one seed)."""
        return cls(model, str(task), inputs, str(evaluation), scores, None, (int(seed),), int(n_train), int(n_test))


def pool_seeds(runs: Sequence[Sequence[ModelScore]]) -> tuple[ModelScore, ...]:
    """Mean ± std over seeds of the same models: ``runs[i]`` holds one seed's scores, in the
    same model order for every seed."""
    pooled = []
    for same in zip(*runs, strict=True):
        if len({s.key for s in same}) != 1:
            raise ValueError(f"seed runs disagree on the models: {[s.key for s in same]}")
        mean, std = mean_std([s.scores for s in same])
        first = same[0]
        pooled.append(ModelScore(first.model, first.task, first.inputs, first.evaluation, mean, std,
                                 tuple(s for m in same for s in m.seeds), first.n_train, first.n_test))
    return tuple(pooled)


# --------------------------------------------------------------------------- JSON
def to_json(obj):
    """A JSON-ready copy of ``obj``: dataclasses as objects, enums as their value, NumPy arrays as
    lists, non-finite floats as None."""
    if hasattr(obj, "__json__"):
        return to_json(obj.__json__())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.metadata.get("json", True)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k.value if isinstance(k, Enum) else k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json(obj.tolist())
    if isinstance(obj, np.generic):
        return to_json(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj

"""Kernel classification (paper Sec. III B, Fig. 4, Table I, Appendix C 5).

Protocol (the paper's, leak-free): one stratified train/test split; SMOTE oversampling of the
training part only, inside an imbalanced-learn :class:`~imblearn.pipeline.Pipeline` so that
cross-validation resamples each fold's training part and never sees a synthetic copy of a
validation or test row; random forests with out-of-bag scores. Every result carries the four
scores of :class:`~pyecho.learn.base.ClassScores` (F1 of the power-law class, weighted F1,
macro F1, accuracy).

Note on OOB: the forest's bootstrap draws from the SMOTE-resampled training set, so its OOB
rows include synthetic points (as in the paper, which used sklearn's ``oob_score``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import confusion_matrix, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier

from pyecho.learn.base import (NO_JSON, POWER_CLASS, TASK_CLASSES, Budget, ByFeatureSet, ClassScores, Evaluation,
                               FeatureSet, Labels, Metric, ModelScore, Note, Split, Task, ZooModel, no_note)
from pyecho.learn.paper.features import Features

#: the paper's classifier
RF_MODEL = "random forest"


def make_rf_pipeline(n_estimators: int = 200, seed: int = 0, n_jobs: int = 1, sampler=None) -> Pipeline:
    """SMOTE (training part only) -> RandomForestClassifier(max_features="sqrt", oob_score=True).

    ``sampler`` replaces SMOTE (tests use a recording sampler); ``"passthrough"`` disables it.
    """
    return Pipeline([
        ("smote", SMOTE(random_state=seed) if sampler is None else sampler),
        ("rf", RandomForestClassifier(n_estimators=n_estimators, max_features="sqrt",
                                      oob_score=True, random_state=seed, n_jobs=n_jobs)),
    ])


def power_f1_scorer(task: Task):
    """CV scorer: F1 of the power-law class of ``task``."""
    power = POWER_CLASS[task]

    def score(est, X, y):
        return float(f1_score(y, est.predict(X), labels=[power], average="macro", zero_division=0))
    return score


def _fit_smote_k(pipe, y_train, min_count: int | None = None):
    """Shrink SMOTE's k_neighbors for tiny minority classes (k < minority size); drop it if < 2."""
    if not hasattr(pipe, "named_steps") or not isinstance(pipe.named_steps.get("smote"), SMOTE):
        return pipe
    if min_count is None:
        _, counts = np.unique(y_train, return_counts=True)
        min_count = int(counts.min())
    k = pipe.named_steps["smote"].k_neighbors
    if isinstance(k, int) and min_count <= k:
        pipe.set_params(smote=SMOTE(random_state=pipe.named_steps["smote"].random_state,
                                    k_neighbors=min_count - 1) if min_count >= 2 else "passthrough")
    return pipe


@dataclass(frozen=True)
class CvScore:
    """Stratified k-fold CV on the training rows: mean and std of ``metric`` over ``folds`` folds."""

    metric: Metric
    mean: float
    std: float
    folds: int


@dataclass(frozen=True)
class ClassifierResult:
    """A fitted classifier scored on the test rows.

    task : the task; classes : class order (rows/columns of ``confusion``); scores : the four
    test scores; confusion : (C, C) counts, rows = true class; cv : CV on the training rows
    (None when skipped); oob_accuracy : OOB accuracy of a final random forest (else None);
    importances : (F,) Gini importances (if the model has them); y_pred / proba : test rows.
    """

    task: Task
    classes: tuple[str, ...]
    scores: ClassScores
    confusion: np.ndarray
    cv: CvScore | None
    oob_accuracy: float | None
    n_train: int
    n_test: int
    feature_names: tuple[str, ...] = field(metadata=NO_JSON)
    importances: np.ndarray | None = field(metadata=NO_JSON)
    y_pred: np.ndarray = field(metadata=NO_JSON)
    proba: np.ndarray | None = field(metadata=NO_JSON)
    model: object = field(metadata=NO_JSON)

    @property
    def confusion_norm(self) -> np.ndarray:
        """Row-normalised confusion matrix (fraction of each true class)."""
        return self.confusion / np.maximum(self.confusion.sum(axis=1, keepdims=True), 1)

    @property
    def p_error(self) -> float:
        """Fraction of the power-law test echoes classified as another class."""
        i = self.classes.index(POWER_CLASS[self.task])
        return float(1.0 - self.confusion_norm[i, i])

    def model_score(self, model: str, inputs: str, evaluation: Evaluation, seed: int) -> ModelScore:
        return ModelScore.single(model, self.task, inputs, evaluation, self.scores, seed, self.n_train, self.n_test)


def fit_evaluate(
    pipe,
    X: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    task: Task,
    cv_folds: int = 0,
    cv_pipe=None,
    seed: int = 0,
    feature_names: tuple[str, ...] = (),
) -> ClassifierResult:
    """Fit a clone of ``pipe`` on the training rows and score it on the test rows.

    Parameters
    ----------
    pipe : classifier / imblearn pipeline (cloned, not modified)
    X : array (B, F); y : array (B,) class labels of ``task``
    train, test : row indices
    cv_folds : stratified k-fold CV (F1 of the power-law class) on the training rows; < 2 skips it
    cv_pipe : estimator used for the CV folds (default: ``pipe``); lets CV use smaller forests
    """
    classes = TASK_CLASSES[task]
    model = _fit_smote_k(clone(pipe), y[train]).fit(X[train], y[train])
    y_pred = model.predict(X[test])
    cv = None
    if cv_folds and cv_folds > 1:
        folds = StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
        _, counts = np.unique(y[train], return_counts=True)
        fold_min = int(counts.min() * (cv_folds - 1) // cv_folds)
        cv_est = _fit_smote_k(clone(cv_pipe if cv_pipe is not None else pipe), None, fold_min)
        s = cross_val_score(cv_est, X[train], y[train], scoring=power_f1_scorer(task), cv=folds)
        cv = CvScore(metric=Metric.F1_POWER, mean=float(s.mean()), std=float(s.std()), folds=int(cv_folds))
    final = model[-1] if hasattr(model, "steps") else model
    return ClassifierResult(
        task=task, classes=classes,
        scores=ClassScores.of(y[test], y_pred, classes, POWER_CLASS[task]),
        confusion=confusion_matrix(y[test], y_pred, labels=list(classes)),
        cv=cv, oob_accuracy=float(final.oob_score_) if hasattr(final, "oob_score_") else None,
        n_train=len(train), n_test=len(test), feature_names=tuple(feature_names),
        importances=getattr(final, "feature_importances_", None), y_pred=y_pred,
        proba=model.predict_proba(X[test]) if hasattr(model, "predict_proba") else None, model=model)


def inputs_name(features: Features, fs: FeatureSet) -> str:
    """How a model's inputs read in the comparison tables, e.g. "pointwise |M| window (400)"."""
    return f"{fs.value} |M| window ({features.tables[fs].shape[1]})"


# --------------------------------------------------------------------------- stages
def run_classifier(features: Features, labels: Labels, split: Split, task: Task, budget: Budget, n_jobs: int,
                   cv_folds: int = 0, note: Note = no_note) -> ByFeatureSet[ClassifierResult]:
    """Stage: the paper's random forest (training-only SMOTE) for ``task`` on each feature set.

    CV (``cv_folds`` > 1) uses forests of ``budget.aux_trees`` trees.
    """
    y = labels.classes(task)

    def fit(fs: FeatureSet) -> ClassifierResult:
        note(f"{task.value} / {fs.value}")
        return fit_evaluate(make_rf_pipeline(budget.rf_trees, split.seed, n_jobs), features.tables[fs], y,
                            split.train, split.test, task, cv_folds=cv_folds,
                            cv_pipe=make_rf_pipeline(budget.aux_trees, split.seed, n_jobs), seed=split.seed,
                            feature_names=tuple(features.layout.names(fs)))
    return ByFeatureSet.build(fit)


@dataclass(frozen=True)
class PruningStep:
    """One step of the pruning curve: the features kept and the test scores with them."""

    n_features: int
    scores: ClassScores
    cv: CvScore | None
    oob_accuracy: float | None
    features: tuple[str, ...] = field(metadata=NO_JSON)


@dataclass(frozen=True)
class PruningCurve:
    steps: tuple[PruningStep, ...]

    def __json__(self) -> dict:
        # the kept feature names only once they are few enough to read
        return {"steps": [{"n_features": s.n_features, "scores": s.scores, "cv": s.cv, "oob_accuracy": s.oob_accuracy,
                           "features": list(s.features) if s.n_features <= 10 else None} for s in self.steps]}


def _step(res: ClassifierResult, names: list[str], keep: np.ndarray) -> PruningStep:
    return PruningStep(n_features=len(keep), scores=res.scores, cv=res.cv, oob_accuracy=res.oob_accuracy,
                       features=tuple(names[i] for i in keep))


def pruning_curve(X: np.ndarray, y: np.ndarray, split: Split, first: ClassifierResult, make_pipe,
                  feature_names: list[str], cv_folds: int = 0, note: Note = no_note) -> PruningCurve:
    """Successive pruning (paper Fig. 4a): keep the features above the median Gini importance
    of the previous model, refit, repeat until two features remain.

    ``first`` is the P-vs-NP result on all features (step 0); ``make_pipe()`` builds each step's model.
    """
    keep = np.arange(X.shape[1])
    steps = [_step(first, feature_names, keep)]
    imp = np.asarray(first.importances)
    while len(keep) > 2:
        sel = imp > np.median(imp)
        if sel.sum() < 2 or sel.sum() == len(keep):
            sel = np.zeros(len(keep), bool)
            sel[np.argsort(imp)[::-1][: max(2, len(keep) // 2)]] = True
        keep = keep[sel]
        res = fit_evaluate(make_pipe(), X[:, keep], y, split.train, split.test, first.task, cv_folds=cv_folds,
                           seed=split.seed)
        imp = np.asarray(res.importances)
        steps.append(_step(res, feature_names, keep))
        note(f"{len(keep)} features")
    return PruningCurve(tuple(steps))


def run_pruning(features: Features, labels: Labels, split: Split, pvnp: ByFeatureSet[ClassifierResult],
                budget: Budget, n_jobs: int, note: Note = no_note) -> ByFeatureSet[PruningCurve]:
    """Stage: the pruning curve of the P-vs-NP forest on each feature set."""
    y = labels.classes(Task.PVNP)
    return ByFeatureSet.build(lambda fs: pruning_curve(
        features.tables[fs], y, split, pvnp[fs], lambda: make_rf_pipeline(budget.aux_trees, split.seed, n_jobs),
        features.layout.names(fs), cv_folds=budget.prune_cv_folds, note=lambda s: note(f"{fs.value}: {s}")))


def model_zoo(seed: int = 0, n_jobs: int = 1, rf_trees: int = 200) -> dict[ZooModel, Pipeline]:
    """The paper's Table I models, each as StandardScaler -> SMOTE -> model (trees unscaled)."""
    def scaled(model):
        return Pipeline([("scale", StandardScaler()), ("smote", SMOTE(random_state=seed)), ("model", model)])

    return {
        ZooModel.LOGISTIC: scaled(LogisticRegression(max_iter=2000)),
        ZooModel.KNN: scaled(KNeighborsClassifier(n_neighbors=5, n_jobs=n_jobs)),
        ZooModel.LINEAR_SVM: scaled(LinearSVC(C=1.0, max_iter=5000, random_state=seed)),
        ZooModel.KERNEL_SVM: scaled(SVC(kernel="rbf", C=1.0, gamma="scale", random_state=seed)),
        ZooModel.SGD: scaled(SGDClassifier(random_state=seed)),
        ZooModel.DECISION_TREE: Pipeline([("smote", SMOTE(random_state=seed)),
                                          ("model", DecisionTreeClassifier(random_state=seed))]),
        ZooModel.RANDOM_FOREST: make_rf_pipeline(rf_trees, seed, n_jobs),
    }


def subsample(train: np.ndarray, y: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """Stratified random subset of the training indices with at most ``max_rows`` rows."""
    if max_rows is None or len(train) <= max_rows:
        return train
    sub, _ = train_test_split(train, train_size=max_rows, random_state=seed, stratify=y[train])
    return np.sort(sub)


@dataclass(frozen=True)
class ZooEntry:
    """One Table I model: its test scores (P vs NP, pointwise features) and training rows used."""

    model: ZooModel
    scores: ClassScores
    n_train: int


@dataclass(frozen=True)
class ZooResult:
    entries: tuple[ZooEntry, ...]


def run_zoo(features: Features, labels: Labels, split: Split, pvnp_pointwise: ClassifierResult, budget: Budget,
            n_jobs: int, note: Note = no_note) -> ZooResult:
    """Stage: the Table I models on the pointwise features, same split and SMOTE protocol.

    The random forest is the P-vs-NP result already fitted; the RBF SVM (and kNN, if
    ``budget.knn_max_train``) train on a stratified subsample of the training rows.
    """
    X, y = features.tables[FeatureSet.POINTWISE], labels.classes(Task.PVNP)
    limits = {ZooModel.KERNEL_SVM: budget.svm_max_train, ZooModel.KNN: budget.knn_max_train}
    entries = []
    for name, model in model_zoo(split.seed, n_jobs, budget.rf_trees).items():
        if name == ZooModel.RANDOM_FOREST:
            entries.append(ZooEntry(name, pvnp_pointwise.scores, pvnp_pointwise.n_train))
            continue
        note(name.value)
        tr = subsample(split.train, y, limits.get(name), split.seed)
        res = fit_evaluate(model, X, y, tr, split.test, Task.PVNP)
        entries.append(ZooEntry(name, res.scores, len(tr)))
    return ZooResult(tuple(entries))

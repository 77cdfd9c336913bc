"""The paper's numbers, in one table: Rao et al., PRR 5, 043098 (2023).

Every place the report quotes the paper reads the record here, which says which metric the
number is and how it was obtained. The paper's headline F1 = 0.82 (and all of Table I) came
from a test set that leaked: its authors SMOTE-oversampled all 15 000 echoes *before* the
train/test split, so synthetic neighbours of training echoes sit in the test set. Their own
leak-free model (oversampling the training part only) gave F1 of the power-law class 0.59,
weighted F1 0.73 and accuracy 0.74: those are the numbers to compare a leak-free model with.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pyecho.learn.base import METRIC_TITLES, Metric, ZooModel


class Obtained(StrEnum):
    """How the paper's number was obtained."""

    LEAKED = "leaked (all echoes oversampled before the train/test split)"
    LEAK_FREE = "leak-free (the authors' notebook, oversampling the training part only)"
    PAPER_TEXT = "as stated in the paper"


@dataclass(frozen=True)
class PaperValue:
    """One quantity of the paper.

    name : what was measured; value : the number (None where the paper gives none);
    shown : how the paper quotes it ("0.82", "≈ 0.8", "> 0.8", "poor", ...);
    metric : a :class:`Metric` (our score of the same name is the like-for-like comparison),
    None for a qualitative statement;
    obtained : how; note : anything a reader needs to compare with it.
    """

    name: str
    value: float | None
    shown: str
    metric: Metric | None
    obtained: Obtained
    note: str = ""

    @property
    def label(self) -> str:
        """``shown`` with its metric and, for a classification score, whether the test set leaked,
        e.g. "0.59 (F1 of the power-law class, leak-free)"."""
        notes = [METRIC_TITLES[self.metric]] if self.metric else []
        if self.obtained != Obtained.PAPER_TEXT:
            notes.append("leaked" if self.obtained == Obtained.LEAKED else "leak-free")
        return f"{self.shown} ({', '.join(notes)})" if notes else self.shown


PVNP_LEAKED = PaperValue(
    "P vs NP, random forest: the paper's headline F1", 0.82, "0.82", Metric.F1_WEIGHTED, Obtained.LEAKED,
    "The paper's F1 is the weighted (= macro, the oversampled classes being balanced) F1 on a leaked test set; "
    "it is optimistic and not comparable with a leak-free score")
PVNP_F1_POWER = PaperValue("P vs NP, random forest", 0.59, "0.59", Metric.F1_POWER, Obtained.LEAK_FREE)
PVNP_F1_WEIGHTED = PaperValue("P vs NP, random forest", 0.73, "0.73", Metric.F1_WEIGHTED, Obtained.LEAK_FREE)
PVNP_ACCURACY = PaperValue("P vs NP, random forest", 0.74, "0.74", Metric.ACCURACY, Obtained.LEAK_FREE)
PVNP_P_ERROR = PaperValue(
    "P vs NP, random forest", 0.4, "just above 0.4", Metric.P_ERROR, Obtained.PAPER_TEXT,
    "the paper's confusion matrix (Fig. 4)")

TABLE_I: dict[ZooModel, PaperValue] = {
    ZooModel.LOGISTIC: PaperValue("Table I: logistic regression", 0.795, "0.795", Metric.F1_WEIGHTED, Obtained.LEAKED),
    ZooModel.KNN: PaperValue("Table I: k-nearest neighbours", 0.793, "0.793", Metric.F1_WEIGHTED, Obtained.LEAKED),
    ZooModel.LINEAR_SVM: PaperValue("Table I: linear SVM", 0.796, "0.796", Metric.F1_WEIGHTED, Obtained.LEAKED),
    ZooModel.KERNEL_SVM: PaperValue("Table I: kernel SVM", 0.69, "0.69", Metric.F1_WEIGHTED, Obtained.LEAKED),
    ZooModel.SGD: PaperValue("Table I: SGD classifier", 0.79, "0.79", Metric.F1_WEIGHTED, Obtained.LEAKED),
    ZooModel.DECISION_TREE: PaperValue("Table I: decision tree", 0.756, "0.756", Metric.F1_WEIGHTED, Obtained.LEAKED),
    ZooModel.RANDOM_FOREST: PVNP_LEAKED,
}

WSCREEN_F1 = PaperValue(
    "P vs NP with W screening (3 W bins)", 0.9, "≈ 0.9", Metric.F1_UNSTATED, Obtained.PAPER_TEXT,
    "test echoes are routed to a bin model by their true W")
WSCREEN_P_ERROR = PaperValue(
    "P vs NP with W screening", 0.2, "≈ 0.2", Metric.P_ERROR, Obtained.PAPER_TEXT,
    "the paper's confusion matrices (Figs. 8-9)")
KERNEL3_SEPARABLE = PaperValue(
    "3-class kernel: gaussian vs RKKY", None, "not separable", None, Obtained.PAPER_TEXT)
R2_W = PaperValue("R² W, all kernels", 0.8, "≈ 0.8", Metric.R2, Obtained.PAPER_TEXT)
R2_ALPHA_XY = PaperValue("R² alpha_x, all kernels", 0.9, "≈ 0.9", Metric.R2, Obtained.PAPER_TEXT)
R2_L_POWER = PaperValue("R² L, power-law kernels only", 0.8, "> 0.8", Metric.R2, Obtained.PAPER_TEXT)
R2_ALPHA_Z = PaperValue("R² alpha_z, all kernels", None, "poor", Metric.R2, Obtained.PAPER_TEXT, "no number given")
KMEANS_ELBOW = PaperValue("k-means elbow K", 3, "3", None, Obtained.PAPER_TEXT)
VAE_ORDER = PaperValue(
    "beta-VAE latent space", None, "orders the echoes by W (LA1 for the full series, LA2 for the window)", None,
    Obtained.PAPER_TEXT)
PRUNING_LAST_TWO = PaperValue(
    "successive pruning: the last two features", None, "|M| at 2τ and the post-echo shoulder ≈ 210 µs", None,
    Obtained.PAPER_TEXT)

#: every record, in the report's order
ALL: tuple[PaperValue, ...] = (
    PVNP_LEAKED, PVNP_F1_POWER, PVNP_F1_WEIGHTED, PVNP_ACCURACY, PVNP_P_ERROR,
    *(v for k, v in TABLE_I.items() if k != ZooModel.RANDOM_FOREST),
    WSCREEN_F1, WSCREEN_P_ERROR, KERNEL3_SEPARABLE, R2_W, R2_ALPHA_XY, R2_L_POWER, R2_ALPHA_Z,
    KMEANS_ELBOW, VAE_ORDER, PRUNING_LAST_TWO,
)

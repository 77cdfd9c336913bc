"""Everything one `pyecho learn` run produced, as one frozen record.

A new model stage adds one field here (with a default of None, after the others), whose value
has a ``model_scores()`` method: metrics.json (which serialises every field) and the report's
comparison tables (which list every field's model scores) pick it up without further changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from pyecho.learn.base import NO_JSON, Budget, ByFeatureSet, LearnData, ModelScore, Split
from pyecho.learn.calibration.trust import TrustReport
from pyecho.learn.design.identifiability import MeasurementStudy
from pyecho.learn.design.limits import LimitsStudy
from pyecho.learn.models.candidates import CandidateSeeds, CandidatesResult
from pyecho.learn.paper.classify import ClassifierResult, PruningCurve, ZooResult
from pyecho.learn.models.curves import LearningCurves
from pyecho.learn.paper.features import Features
from pyecho.learn.paper.leak import LeakResult
from pyecho.learn.paper.models import SavedModel
from pyecho.learn.paper.regress import RegressionTable
from pyecho.learn.paper.screening import WScreenResult
from pyecho.learn.paper.seeds import SeedStudy
from pyecho.learn.paper.unsupervised import UnsupervisedResult
from pyecho.learn.paper.vae import VaeResult


@dataclass(frozen=True)
class StageTime:
    """One stage's wall time and the peak resident memory of the learning process during it
    (GB; None where the system cannot tell: it is read from Linux's /proc)."""

    stage: str
    seconds: float
    peak_rss_gb: float | None = None


def run_peak_rss_gb(stages) -> float | None:
    """The largest of the stages' peaks (GB), None where one is unknown. Each stage restarts the
    kernel's high-water mark, so this, not `/usr/bin/time`'s maximum resident size (which then
    is the last stage's), is the run's peak."""
    peaks = [st.peak_rss_gb for st in stages]
    return max(peaks) if peaks and None not in peaks else None


@dataclass(frozen=True)
class RunInfo:
    """How the run was made: versions, sizes, seeds, budget, the dataset's metadata, timings."""

    pyecho_version: str
    n_samples: int
    n_times: int
    protocol: str
    seed: int
    n_jobs: int
    budget: Budget
    paper_samples: int  # the samples the paper's pipeline read (Budget.paper_max_samples)
    metadata: dict
    stage_seconds: tuple[StageTime, ...]
    wall_seconds_before_report: float

    @property
    def peak_rss_gb(self) -> float | None:
        """The run's peak resident memory so far (GB): the largest stage peak, None where unknown."""
        return run_peak_rss_gb(self.stage_seconds)


@dataclass(frozen=True)
class LearnResults:
    """The results of every stage (field order = the order of the comparison tables' rows)."""

    info: RunInfo
    split: Split
    paper_split: Split  # ``split`` on the paper's samples (``paper_data``)
    features: Features
    unsupervised: UnsupervisedResult
    vae_full: VaeResult
    vae_window: VaeResult
    pvnp: ByFeatureSet[ClassifierResult]
    pruning: ByFeatureSet[PruningCurve]
    zoo: ZooResult
    kernel3: ByFeatureSet[ClassifierResult]
    regression: RegressionTable
    wscreen: ByFeatureSet[WScreenResult]
    seeds: SeedStudy
    leak: LeakResult
    candidates: CandidatesResult
    candidate_seeds: CandidateSeeds
    hahn_seeds: CandidateSeeds | None
    measurements: MeasurementStudy
    curves: LearningCurves | None
    trust: TrustReport | None
    limits: LimitsStudy | None
    models: tuple[SavedModel, ...]
    data: LearnData = field(metadata=NO_JSON)
    #: what the paper's pipeline read: ``data``, or its 90° Hahn echoes of a subsample
    paper_data: LearnData = field(metadata=NO_JSON)

    def model_scores(self) -> tuple[ModelScore, ...]:
        """Every model × task score of the run, from each field that has ``model_scores()``."""
        out: list[ModelScore] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if hasattr(value, "model_scores"):
                out.extend(value.model_scores())
        return tuple(out)

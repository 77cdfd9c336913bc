"""Each model's error against what the records allow: RMSE per family and target beside the bound.

The Cramér-Rao bound (pyecho.fit.limits) is computed on the dataset's own prior, lattice and
protocol at a few points along each family's kernel parameter (the other parameters at the
prior's middle), at the test SNR it is compared with. The headline models' test RMSE within each
family is set beside the bound's root-mean-square sd over those points: a ratio near 1 means the
model uses what the records hold; a large ratio, that the records hold more than it extracts.
The bound is for one record of the dataset's lattice, its detuning-draw scatter included.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pyecho.data.sampling import DatasetConfig
from pyecho.fit.forward import Engine
from pyecho.fit.limits import BoundMap, BoundSettings, bound_map, prior_sd
from pyecho.fit.space import FAMILIES, FamilySpace
from pyecho.learn.base import NO_JSON, Budget, Note, no_note
from pyecho.learn.models.candidates import TEST_SNRS, CandidatesResult
from pyecho.learn.models.targets import EchoTargets
from pyecho.physics.protocol import RecordGrid

#: the test SNR the models are set against the bound at
LIMITS_SNR = 200.0


@dataclass(frozen=True)
class LimitRow:
    """One family and target: the model's test RMSE (natural units, SNR ``LIMITS_SNR``) over
    ``n`` test rows, the bound's RMS sd over the map, and the prior's sd."""

    kernel: str
    target: str
    n: int
    model_rmse: float
    bound_sd: float
    prior_sd: float

    @property
    def ratio(self) -> float:
        """How many times the bound the model's error is."""
        return self.model_rmse / self.bound_sd if self.bound_sd > 0 else math.inf


@dataclass(frozen=True)
class LimitsStudy:
    """The bound map and the models set against it."""

    snr: float
    protocol: str
    lattice: int
    rows: tuple[LimitRow, ...]
    points: tuple[dict, ...]
    bound_map: BoundMap = field(metadata=NO_JSON, repr=False)
    prior: dict = field(metadata=NO_JSON, repr=False)


def run_limits(config: DatasetConfig, candidates: CandidatesResult, truth: EchoTargets, budget: Budget, *,
               note: Note = no_note) -> LimitsStudy:
    """The bound map of ``config`` and the headline models' test RMSE within each family against it
    (``truth``: the targets of the test rows)."""
    spaces = {k: FamilySpace(k, config) for k in config.kernels if k in FAMILIES}
    grid = RecordGrid(config.protocol, config.dt_us)
    settings = BoundSettings(draws=budget.limit_draws, more_draws=budget.limit_more_draws,
                             mean_draws=min(budget.limit_draws, 4), dead_time_us=budget.dead_time_us, engine=Engine())
    done = [0]

    def advance() -> None:
        done[0] += 1
        note(f"bound {done[0]} of {budget.limit_points * len(spaces)}")

    result = bound_map(spaces, grid, LIMITS_SNR, budget.limit_points, settings, on_point=advance)
    prior = {k: prior_sd(s) for k, s in spaces.items()}
    snr_index = TEST_SNRS.index(LIMITS_SNR)
    family = np.asarray(truth.kernel)
    rows = []
    for kernel in spaces:
        in_family = family == kernel
        for target in truth.targets:
            predicted = candidates.run(candidates.headline.targets[target]).test_pred[snr_index][target]
            error = predicted[in_family] - truth[target][in_family]
            rows.append(LimitRow(kernel, target, int(in_family.sum()), float(np.sqrt(np.mean(error**2))),
                                 result.rms_sd(kernel, target), prior[kernel].get(target, math.nan)))
    return LimitsStudy(LIMITS_SNR, config.protocol.text, config.lattice, tuple(rows), tuple(result.to_rows()), result, prior)


@dataclass(frozen=True)
class ProtocolBound:
    """A protocol ranked by its bound: ``score`` is the mean over the families of L's RMS
    Cramér-Rao sd over the prior's sd of L (lower: the records pin the range better);
    ``ratio`` family -> that family's term; ``time_us`` the spectrometer time per sample."""

    label: str
    time_us: float
    score: float
    ratio: dict
    bound_map: BoundMap = field(metadata=NO_JSON, repr=False)


def rank_by_bound(config: DatasetConfig, protocols: dict[str, str], snr: float, points: int,
                  settings: BoundSettings, *, on_point=None) -> tuple[ProtocolBound, ...]:
    """Each protocol (label -> protocol text) of ``config``'s prior and lattice ranked by its
    Cramér-Rao bound on L at ``snr`` (best first); the same detuning draws for every protocol."""
    out = []
    for label, text in protocols.items():
        prior_config = config.replace(protocol=text)
        spaces = {k: FamilySpace(k, prior_config) for k in prior_config.kernels if k in FAMILIES}
        grid = RecordGrid(prior_config.protocol, prior_config.dt_us)
        result = bound_map(spaces, grid, snr, points, settings, on_point=on_point)
        ratio = {k: result.rms_sd(k, "L") / prior_sd(space)["L"] for k, space in spaces.items()}
        out.append(ProtocolBound(label, prior_config.protocol.duration_us(prior_config.dt_us),
                                 float(np.mean(list(ratio.values()))), ratio, result))
    return tuple(sorted(out, key=lambda b: b.score))

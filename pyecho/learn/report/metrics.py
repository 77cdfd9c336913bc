"""``metrics.json``: the JSON-ready figures of merit of a run, built from :class:`LearnResults`.

Every result dataclass is serialised field by field (:func:`to_json`); fields marked
``NO_JSON`` (arrays per echo, fitted models) are left out, and an object with a ``__json__()``
method says itself what to write. So a new stage needs no code here.
"""
from __future__ import annotations

import dataclasses

from pyecho.learn.paper import table as paper
from pyecho.learn.base import ClassScores, Evaluation, ModelScore, to_json
from pyecho.learn.results import LearnResults


def headline(scores: tuple[ModelScore, ...]) -> dict:
    """``{task}_{metric}`` (and ``{task}_{metric}_std`` over seeds) of the paper's models, leak-free."""
    out: dict = {}
    for s in scores:
        if s.evaluation != Evaluation.PAPER:
            continue
        for f in dataclasses.fields(s.scores):
            out[f"{s.task}_{f.name}"] = getattr(s.scores, f.name)
            if s.spread is not None:
                out[f"{s.task}_{f.name}_std"] = getattr(s.spread, f.name)
        out["seeds"] = list(s.seeds)
    return out


def leak_comparison(results: LearnResults) -> dict:
    """The paper's random forest on P vs NP: leak-free (this run) and leaked, with the paper's numbers."""
    leak_free = results.pvnp.pointwise.scores
    return {"leak_free": to_json(leak_free), "leaked": to_json(results.leak.scores),
            "paper_leak_free": {m.metric.value: m.value for m in (paper.PVNP_F1_POWER, paper.PVNP_F1_WEIGHTED,
                                                                  paper.PVNP_ACCURACY)},
            "paper_leaked": {paper.PVNP_LEAKED.metric.value: paper.PVNP_LEAKED.value},
            "metrics": [f.name for f in dataclasses.fields(ClassScores)]}


def build_metrics(results: LearnResults) -> dict:
    """Everything ``metrics.json`` holds: the headline (mean over seeds), the leak comparison,
    every model × task score, the paper's table, and every stage's results under ``results``."""
    scores = results.model_scores()
    return {"headline": headline(scores), "leak_comparison": leak_comparison(results),
            "model_scores": to_json(scores), "paper": to_json(paper.ALL), "results": to_json(results)}

"""``report.md`` of `pyecho learn`: markdown from :class:`LearnResults` and the figure files.

Every number comes from the run's results; every paper number from :mod:`pyecho.learn.paper.table`,
with the metric it is and whether the paper's test set leaked. Every comparison names its metric.
"""
from __future__ import annotations

from dataclasses import fields
import math
from pathlib import Path


from pyecho.atomic import atomic_path
from pyecho.learn.paper import table as paper
from pyecho.learn.base import (COUPLING_TARGETS, FEATURE_SETS, METRIC_TITLES, SUBSETS, TASK_TITLES, ClassScores,
                               Evaluation,
                               FeatureSet, Metric, ModelScore, POWER_KERNEL, RegScores, Subset, Target, Task)
from pyecho.learn.models.candidates import (CANDIDATE_TITLES, TEST_SNRS, TRAIN_SNR_RANGE, Candidate, CandidateSeeds,
                                            HeadlineScore)
from pyecho.learn.models.targets import KERNEL_CLASSES
from pyecho.learn.report.figures import FigurePaths
from pyecho.learn.paper.table import PaperValue
from pyecho.learn.results import LearnResults
from pyecho.learn.paper.vae import BETA, PATIENCE

CLASS_METRICS: tuple[Metric, ...] = tuple(Metric(f.name) for f in fields(ClassScores))
REG_METRICS: tuple[Metric, ...] = tuple(Metric(f.name) for f in fields(RegScores))
#: the paper's regression numbers by (target, subset)
PAPER_R2: dict[tuple[Target, Subset], PaperValue] = {
    (Target.W, Subset.ALL): paper.R2_W, (Target.ALPHA_XY, Subset.ALL): paper.R2_ALPHA_XY,
    (Target.L, Subset.P): paper.R2_L_POWER, (Target.ALPHA_Z, Subset.ALL): paper.R2_ALPHA_Z,
}
DASH = "—"
#: what pyecho aims for beyond the paper (its issue tracker's goals), by task and metric; the
#: second-angle goals apply when the dataset holds a second pulse angle
GOALS: dict[tuple[str, Metric], str] = {
    (Task.PVNP, Metric.F1_POWER): "≥ 0.92", (Task.PVNP, Metric.F1_WEIGHTED): "≥ 0.95",
    (Task.KERNEL3, Metric.F1_MACRO): "≥ 0.85", (Target.L, Metric.R2): "≥ 0.90", (Target.ALPHA_XY, Metric.R2): "≥ 0.99",
    (Target.W, Metric.R2): "≥ 0.99", (Target.ALPHA_Z, Metric.R2): "≥ 0.98", (Target.T2, Metric.R2): "≥ 0.95 (log10 T2)",
}
GOAL_L_WITHIN = "≥ 0.70 within gaussian and within power"
COVERAGE_GOAL = "0.88–0.92 at 90 %"


def _f(v, nd=3) -> str:
    return DASH if v is None else f"{v:.{nd}f}"


def _pm(s: ModelScore, metric: Metric) -> str:
    """``mean ± std`` of one metric over the seeds (just the value for one seed)."""
    mean = getattr(s.scores, metric.value)
    return _f(mean) if s.spread is None else f"{mean:.3f} ± {getattr(s.spread, metric.value):.3f}"


def _header(*cols: str) -> str:
    return "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)


def _class_cols() -> list[str]:
    return [METRIC_TITLES[m] for m in CLASS_METRICS]


def _class_vals(s: ClassScores) -> list[str]:
    return [_f(getattr(s, m.value)) for m in CLASS_METRICS]


def _paper_cell(p: PaperValue | None) -> str:
    return DASH if p is None else p.label


def _cv_phrase(folds: int) -> str:
    return f"{folds}-fold CV" if folds and folds > 1 else "no CV (test scores and OOB only)"


def _find(scores: tuple[ModelScore, ...], evaluation: Evaluation, task: str) -> ModelScore:
    return next(s for s in scores if s.evaluation == evaluation and s.task == task)


class _Doc:
    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        self.lines.append(text)

    def row(self, *cells) -> None:
        """A table row; "|" inside a cell (as in |M|) is escaped."""
        self.lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _snr(snr: float) -> str:
    return "∞" if snr == float("inf") else f"{snr:g}"


def _the_table(w: _Doc, r: LearnResults, scores: tuple[ModelScore, ...]) -> None:
    cs, hs = r.candidate_seeds, r.hahn_seeds
    over = f"mean ± std over seeds {', '.join(map(str, cs.seeds))}" if len(cs.seeds) > 1 else f"seed {cs.seeds[0]}"
    w("## The table: the paper, its method here, and the best models here\n")
    w(f"Test rows of the same split(s), {over}. \"paper's RF here\": the paper's random forest on the pointwise |M| "
      "window of the 90° Hahn echo. \"best here\": the headline prediction of each task (each task's model chosen on "
      f"validation rows; the kernel's one calibrated distribution) from the protocol **{cs.label}**"
      + (f", and from the Hahn echo alone on the same samples ({hs.label})" if hs else "")
      + "; noise-free test rows, and at SNR 200, 50 and 20 (an independent noise draw each).\n")
    cols = ["quantity", "metric", "paper", "paper's RF here", f"best here ({cs.label})"]
    if hs:
        cols.append(f"best here, {hs.label}")
    w(_header(*cols, "best here, SNR " + " / ".join(_snr(s) for s in TEST_SNRS[1:]), "goal"))

    def rows(task, metrics, paper_cells):
        rf = next((s for s in scores if s.evaluation == Evaluation.PAPER and s.task == task), None)
        for m, p in zip(metrics, paper_cells):
            noisy = " / ".join(_hs(cs.headline(task, snr), m) for snr in TEST_SNRS[1:])
            cells = [TASK_TITLES[task], METRIC_TITLES[m], p, DASH if rf is None else _pm(rf, m), _hs(cs.headline(task), m)]
            if hs:
                cells.append(_hs(hs.headline(task), m) if task in hs.tasks else DASH)
            w.row(*cells, noisy, GOALS.get((task, m), DASH))

    rows(Task.PVNP, (Metric.F1_POWER, Metric.F1_WEIGHTED, Metric.ACCURACY),
         (paper.PVNP_F1_POWER.label, f"{paper.PVNP_F1_WEIGHTED.label}; {paper.PVNP_LEAKED.label}", paper.PVNP_ACCURACY.label))
    rows(Task.KERNEL3, (Metric.F1_MACRO,), (paper.KERNEL3_SEPARABLE.label,))
    targets = cs.tasks[2:]
    for t in targets:
        rows(t, (Metric.R2,), (_paper_cell(PAPER_R2.get((Target(t), Subset.ALL)) or PAPER_R2.get((Target(t), Subset.P))),))
    within = " / ".join(KERNEL_CLASSES)

    def within_cells(study: CandidateSeeds, snr: float) -> str:
        return " / ".join(DASH if h is None else _hs(h, Metric.R2)
                          for h in (study.headline_within(Target.L, k, snr) for k in KERNEL_CLASSES))

    paper_within = " / ".join(paper.R2_L_POWER.label if k == POWER_KERNEL else DASH for k in KERNEL_CLASSES)
    w.row(f"{TASK_TITLES[Target.L]} within {within}", METRIC_TITLES[Metric.R2], paper_within, DASH,
          within_cells(cs, math.inf), *([within_cells(hs, math.inf)] if hs else []), "; ".join(within_cells(cs, snr) for snr in TEST_SNRS[1:]), GOAL_L_WITHIN)
    level = r.candidates.calibrated.level
    for t in targets:
        cells = []
        for snr in TEST_SNRS:
            mean, std = cs.coverage(t, snr)
            cells.append(_f(mean.coverage) if std is None else f"{mean.coverage:.3f} ± {std.coverage:.3f}")
        w.row(f"{t}: {level:.0%} interval", "test coverage at SNR " + " / ".join(_snr(x) for x in TEST_SNRS), "none",
              DASH, " / ".join(cells), *([DASH] if hs else []), DASH, COVERAGE_GOAL)
    chosen = {task: sorted(set(cs.headline(task).chosen)) for task in cs.tasks}
    w("\nHeadline models chosen on validation: " + "; ".join(f"{TASK_TITLES[t]}: {', '.join(c)}" for t, c in chosen.items())
      + ".\n")


def _hs(h: HeadlineScore, metric: Metric) -> str:
    """mean ± std over seeds of a headline score."""
    mean = getattr(h.scores, metric.value)
    return _f(mean) if h.spread is None else f"{mean:.3f} ± {getattr(h.spread, metric.value):.3f}"


def _headline(w: _Doc, r: LearnResults, scores: tuple[ModelScore, ...]) -> None:
    seeds = r.seeds.seeds
    over = f"mean ± std over seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else f"seed {seeds[0]}"
    w("## Headline: the paper's method here vs the paper, like for like\n")
    w(f"The paper's random forest on the pointwise features, test set ({over}). Each row compares one metric "
      f"with the paper's number *of the same metric*; the paper's headline, {paper.PVNP_LEAKED.label}, is "
      "compared only with the leak reproduced here (next section).\n")
    w(_header("quantity", "metric", "ours", "paper (its metric)"))
    pv, k3 = _find(scores, Evaluation.PAPER, Task.PVNP), _find(scores, Evaluation.PAPER, Task.KERNEL3)
    pv_paper = {p.metric: p for p in (paper.PVNP_F1_POWER, paper.PVNP_F1_WEIGHTED, paper.PVNP_ACCURACY)}
    for m in CLASS_METRICS:
        w.row("P vs NP", METRIC_TITLES[m], _pm(pv, m), _paper_cell(pv_paper.get(m)))
    lk = paper.PVNP_LEAKED
    w.row("P vs NP, the paper's leak reproduced (one seed)", METRIC_TITLES[lk.metric],
          _f(getattr(r.leak.scores, lk.metric.value)), lk.label)
    for m in CLASS_METRICS:
        w.row("3-class kernel", METRIC_TITLES[m], _pm(k3, m), DASH)
    w.row("3-class kernel: gaussian vs RKKY", "confusion matrix below", DASH, paper.KERNEL3_SEPARABLE.label)
    for t in COUPLING_TARGETS:
        w.row(f"{t.value}, all kernels", METRIC_TITLES[Metric.R2], _pm(_find(scores, Evaluation.PAPER, t), Metric.R2),
              _paper_cell(PAPER_R2.get((t, Subset.ALL))))
    w.row("L, power-law kernels only (one seed)", METRIC_TITLES[Metric.R2],
          _f(r.regression.get(Target.L, Subset.P).scores.r2), paper.R2_L_POWER.label)
    ws = r.wscreen.pointwise
    for route, pooled in (("true-W bins (the paper's protocol)", ws.true_W), ("predicted-W bins (honest)", ws.predicted_W)):
        for m in (Metric.F1_POWER, Metric.F1_WEIGHTED):
            w.row(f"P vs NP with W screening, {route}, one seed", METRIC_TITLES[m], _f(getattr(pooled.scores, m.value)),
                  paper.WSCREEN_F1.label)
    w("")


def _leak(w: _Doc, r: LearnResults, figs: FigurePaths) -> None:
    lk, lf = r.leak, r.pvnp.pointwise
    w("## The paper's leak, reproduced\n")
    w("The paper's authors oversampled (SMOTE) *all* echoes before the stratified train/test split, so their "
      "test set holds synthetic echoes interpolated between training echoes. Here the same is done once: SMOTE on "
      f"all {lk.n_rows} echoes (+{lk.n_synthetic} synthetic), then a stratified split; {lk.n_test_synthetic} of the "
      f"{lk.n_test} test rows are synthetic. The paper's random forest ({lk.inputs}) is trained on the leaked "
      "training part and scored on the leaked test part. **For illustration only; never used to choose anything.** "
      "The leak-free row is the same model with SMOTE on the training part only (the main split).\n")
    w(_header("evaluation", *_class_cols(), "test rows"))
    w.row("ours, leak-free", *_class_vals(lf.scores), lf.n_test)
    w.row("ours, leaked", *_class_vals(lk.scores), lk.n_test)
    paper_lf = {p.metric: p.shown for p in (paper.PVNP_F1_POWER, paper.PVNP_F1_WEIGHTED, paper.PVNP_ACCURACY)}
    w.row(f"paper, {paper.Obtained.LEAK_FREE.value}", *(paper_lf.get(m, DASH) for m in CLASS_METRICS), DASH)
    w.row(f"paper, {paper.Obtained.LEAKED.value}",
          *(paper.PVNP_LEAKED.shown if m == paper.PVNP_LEAKED.metric else DASH for m in CLASS_METRICS), DASH)
    w(f"\n{paper.PVNP_LEAKED.note}.\n")
    w(f"![leak](figures/{figs.leak})\n")


def _comparison(w: _Doc, scores: tuple[ModelScore, ...]) -> None:
    w("## All models, same test rows\n")
    w("Every model × task of this run (mean ± std where several seeds were run). Classification: the four "
      "scores side by side; regression: test R² and MAE (units of the target).\n")
    w(_header("model", "inputs", "evaluation", "task", *_class_cols(), "seeds"))
    for s in scores:
        if isinstance(s.scores, ClassScores):
            w.row(s.model, s.inputs, s.evaluation, TASK_TITLES[s.task], *(_pm(s, m) for m in CLASS_METRICS),
                  ", ".join(map(str, s.seeds)))
    w("")
    w(_header("model", "inputs", "evaluation", "target", *(METRIC_TITLES[m] for m in REG_METRICS), "seeds"))
    for s in scores:
        if isinstance(s.scores, RegScores):
            w.row(s.model, s.inputs, s.evaluation, s.task, *(_pm(s, m) for m in REG_METRICS),
                  ", ".join(map(str, s.seeds)))
    w("")


def _run_section(w: _Doc, r: LearnResults) -> None:
    b = r.info.budget
    w("## Model sizes and run time\n")
    w(f"Random forests: `max_features=\"sqrt\"`, {b.rf_trees} trees for the headline/saved models "
      f"(P vs NP, 3-class, all-kernel pointwise regressions, the seed study, the leak), {b.aux_trees} trees for CV "
      f"folds, pruning steps, W-screening bins and the other regressions. CV: {_cv_phrase(b.cv_folds)} on the "
      f"training part for the headline P-vs-NP models (scored by {METRIC_TITLES[Metric.F1_POWER]}), "
      f"{_cv_phrase(b.prune_cv_folds)} at each pruning step. Beyond the paper: candidates {', '.join(b.candidates)}, "
      f"series block-averaged by {b.candidate_decimate}, MiniRocket with {b.rocket_kernels} kernels, CNN ≤ "
      f"{b.cnn_max_epochs} epochs (patience {b.cnn_patience}). RBF SVM trained on a "
      f"stratified subsample of ≤ {b.svm_max_train} training rows. VAE: ≤ {b.vae_max_epochs} epochs (early stopping, "
      f"patience {PATIENCE}, 10 % validation), batch {b.vae_batch}. k-means fitted on ≤ {b.kmeans_max_samples} rows "
      f"(SSE on all). Seeds of the headline study: {', '.join(map(str, r.seeds.seeds))} "
      "(`--seeds`; each seed draws its own split and seeds its models).\n")
    w(_header("stage", "seconds", "peak memory (GB)"))
    for st in r.info.stage_seconds:
        w.row(st.stage, st.seconds, "—" if st.peak_rss_gb is None else st.peak_rss_gb)
    if r.info.peak_rss_gb is not None:
        w(f"\nPeak memory of the run before the report: {r.info.peak_rss_gb} GB, the largest stage peak "
          "(each stage restarts the kernel's high-water mark, so a maximum resident size that "
          "`/usr/bin/time` reports is the last stage's only; `metrics.json` has the peak with the report's stage).")
    w("")


def _pvnp(w: _Doc, r: LearnResults, figs: FigurePaths) -> None:
    w("## Fig. 4 — power (P) vs non-power (NP)\n")
    w("Positive class: P. SMOTE on the training part only (imblearn Pipeline, also inside every CV fold). "
      "OOB is the forest's out-of-bag accuracy on the SMOTE-resampled training set. "
      f"CV is scored by {METRIC_TITLES[Metric.F1_POWER]}.\n")
    w(_header("features", *_class_cols(), "CV F1 of the power-law class", "OOB acc.",
              METRIC_TITLES[Metric.P_ERROR], "NP misclassified as P"))
    for fs, res in r.pvnp.items():
        cv = DASH if res.cv is None else f"{res.cv.mean:.3f} ± {res.cv.std:.3f}"
        w.row(f"{fs.value} ({len(res.feature_names)})", *_class_vals(res.scores), cv, _f(res.oob_accuracy),
              _f(res.p_error), _f(res.confusion_norm[0, 1]))
    w(f"\nPaper (random forest): {paper.PVNP_F1_POWER.label}, {paper.PVNP_F1_WEIGHTED.label}, "
      f"{paper.PVNP_ACCURACY.label}; {paper.PVNP_P_ERROR.label} ({paper.PVNP_P_ERROR.note}).\n")
    w("Successive pruning (keep features above the median importance):\n")
    w(_header("features", "n", METRIC_TITLES[Metric.F1_POWER], METRIC_TITLES[Metric.F1_WEIGHTED],
              "CV F1 of the power-law class", "OOB acc."))
    for fs, curve in r.pruning.items():
        for s in curve.steps:
            w.row(fs.value, s.n_features, _f(s.scores.f1_power), _f(s.scores.f1_weighted),
                  DASH if s.cv is None else _f(s.cv.mean), _f(s.oob_accuracy))
    last = {fs.value: list(c.steps[-1].features) for fs, c in r.pruning.items()}
    w(f"\nLast two features: PT {last[FeatureSet.POINTWISE]}, PF {last[FeatureSet.POLYNOMIAL]} "
      f"(paper: {paper.PRUNING_LAST_TWO.shown}).\n")
    w(f"![pvnp](figures/{figs.pvnp})\n")


def _zoo(w: _Doc, r: LearnResults) -> None:
    w("## Table I — model zoo (P vs NP, pointwise features, same split and SMOTE protocol)\n")
    w(f"The paper's Table I values are {METRIC_TITLES[paper.PVNP_LEAKED.metric]}s on its leaked test set: compare "
      "them with the leaked row above, not with these leak-free scores.\n")
    w(_header("#", "algorithm", "training rows", *_class_cols(), "paper"))
    for i, e in enumerate(r.zoo.entries, 1):
        w.row(i, e.model.value, e.n_train, *_class_vals(e.scores), _paper_cell(paper.TABLE_I.get(e.model)))
    w("\nLinear models, kNN and SVMs see standardised features (StandardScaler before SMOTE).\n")


def _wscreen(w: _Doc, r: LearnResults, figs: FigurePaths) -> None:
    w("## Figs. 8–9 — W screening\n")
    w("One RF per W bin, trained on training rows whose true W is in the bin. Test rows routed by true W "
      "(the paper's protocol) and, honestly, by the all-kernel RF's predicted W.\n")
    w(_header("features", "bin", "n train", "n test", METRIC_TITLES[Metric.F1_POWER], METRIC_TITLES[Metric.F1_WEIGHTED],
              METRIC_TITLES[Metric.P_ERROR]))
    for fs, ws in r.wscreen.items():
        for b in ws.bins:
            w.row(fs.value, f"[{b.lo}, {b.hi}]", b.result.n_train, b.result.n_test, _f(b.result.scores.f1_power),
                  _f(b.result.scores.f1_weighted), _f(b.result.p_error))
    w("")
    w(_header("features", "routing", *_class_cols(), "bin accuracy of predicted W"))
    for fs, ws in r.wscreen.items():
        w.row(fs.value, "true W", *_class_vals(ws.true_W.scores), DASH)
        w.row(fs.value, "predicted W", *_class_vals(ws.predicted_W.scores), _f(ws.bin_accuracy_predicted_W))
    w(f"\nPaper: {paper.WSCREEN_F1.label}, {paper.WSCREEN_F1.note}; {paper.WSCREEN_P_ERROR.label} "
      f"({paper.WSCREEN_P_ERROR.note}).\n")
    w(f"![wscreen pt](figures/{figs.wscreen_pointwise})\n\n![wscreen pf](figures/{figs.wscreen_polynomial})\n")


def _kernel3(w: _Doc, r: LearnResults, figs: FigurePaths) -> None:
    w("## 3-class kernel (gaussian / power / RKKY)\n")
    w(_header("model", "features", *_class_cols()))
    for fs, res in r.kernel3.items():
        w.row("RF", fs.value, *_class_vals(res.scores))
    c = r.candidates
    w.row("headline (beyond the paper)", c.inputs, *_class_vals(c.calibrated.headline_at(float("inf")).kernel3))
    w(f"\nPaper: gaussian vs RKKY {paper.KERNEL3_SEPARABLE.shown}. "
      f"{METRIC_TITLES[Metric.F1_POWER]} here is that of the power class among three.\n")
    w(f"![kernel3](figures/{figs.kernel3})\n")


def _regression(w: _Doc, r: LearnResults, figs: FigurePaths) -> None:
    w("## Fig. 5 — regression (random forests)\n")
    w(_header("target", "subset", "features", "OOB R²", "test R²", "test MAE", "paper"))
    for t in COUPLING_TARGETS:
        for s in SUBSETS:
            for fs in FEATURE_SETS:
                res = r.regression.get(t, s, fs)
                w.row(t.value, s.value, fs.value, _f(res.r2_oob), _f(res.scores.r2), f"{res.scores.mae:.4g}",
                      _paper_cell(PAPER_R2.get((t, s))))
    w("\nTop-10 features (all kernels):\n")
    w(_header("target", "features", "top 10 (importance)"))
    for t in COUPLING_TARGETS:
        for fs in FEATURE_SETS:
            top = ", ".join(f"{f.name} ({f.importance:.3f})" for f in r.regression.get(t, Subset.ALL, fs).top_features)
            w.row(t.value, fs.value, top)
    w(f"\n![regression](figures/{figs.regression})\n")
    w("## Figs. 10–12 — feature ranking for W, L, alpha_xy\n")
    w(f"![W](figures/{figs.importance_W})\n\n![L](figures/{figs.importance_L})\n\n"
      f"![alpha_xy](figures/{figs.importance_alpha_xy})\n")


def _study_table(w: _Doc, c) -> None:
    """Every candidate of one study: validation and test scores, and which were chosen."""
    w(_header("candidate", "fit s", "task", "validation", *(f"test, SNR {_snr(s.snr)}" for s in c.runs[0].test),
              "headline"))
    for run in c.runs:
        for task in run.validation.tasks:
            metric = Metric.F1_WEIGHTED if task in (Task.PVNP, Task.KERNEL3) else Metric.R2
            get = lambda scores: _f(getattr(scores[task], metric.value))  # noqa: E731
            chosen = "✔" if c.headline.for_task(task) == run.name else ""
            w.row(CANDIDATE_TITLES[Candidate(run.name)], run.fit_seconds, f"{TASK_TITLES[task]} ({METRIC_TITLES[metric]})",
                  get(run.validation), *(get(s.scores) for s in run.test), chosen)
    w("")


def _candidates(w: _Doc, r: LearnResults, figs: FigurePaths) -> None:
    c = r.candidates
    rows = c.rows
    w("## Beyond the paper: models on every measurement of the protocol\n")
    w(f"Inputs: {c.inputs}. The training samples are split into {len(rows.fit)} fit, {len(rows.validation)} validation "
      f"and {len(rows.calibration)} calibration samples; the test samples are the paper models' {len(rows.test)}. The "
      "fit samples are augmented with one noisy copy each (complex white noise, SNR log-uniform in "
      f"{TRAIN_SNR_RANGE[0]:g}–{TRAIN_SNR_RANGE[1]:g}; the CNN redraws the noise every epoch), and penalties are chosen "
      "on a split by sample (a record and its noisy copy on one side). Validation samples are scored clean and once "
      "noised the same way. **The headline model of each task is the one with the best validation score** "
      "(weighted F1, R²; P vs NP chosen for itself); test scores never choose. SNR = initial |M| over the "
      "per-quadrature noise std.\n")
    w(f"### {c.label}\n")
    _study_table(w, c)
    if r.hahn_seeds is not None:
        h = r.hahn_seeds.results[0]
        w(f"### {h.label}, the same samples and split\n")
        _study_table(w, h)
    w("The headline predictions against the paper's method on the same test rows (noise-free), all four "
      "classification scores:\n")
    w(_header("task", "model", *_class_cols()))
    studies = [c] + ([r.hahn_seeds.results[0]] if r.hahn_seeds is not None else [])
    for task, rf in ((Task.PVNP, r.pvnp.pointwise.scores), (Task.KERNEL3, r.kernel3.pointwise.scores)):
        w.row(TASK_TITLES[task], "paper's RF (pointwise |M| window)", *_class_vals(rf))
        for study in studies:
            w.row(TASK_TITLES[task], f"headline, {study.label}", *_class_vals(study.calibrated.headline_at(float("inf"))[task]))
    w("")
    w(f"![candidates](figures/{figs.candidates})\n")


def _calibration(w: _Doc, r: LearnResults, figs: FigurePaths) -> None:
    c = r.candidates
    cal = c.calibrated
    intervals = cal.calibration.intervals
    w(f"## Calibrated uncertainty ({cal.level:.0%}) at the measurement's noise\n")
    w(f"Mondrian split-conformal intervals on the {len(c.rows.calibration)} calibration samples, each clean and "
      f"{r.info.budget.calibration_copies} times noised (SNR log-uniform in {TRAIN_SNR_RANGE[0]:g}–{TRAIN_SNR_RANGE[1]:g}): "
      "one half-width per band of the *estimated* SNR (the records' own noise, from their second differences; "
      "pyecho.data.records.estimate_noise), so an interval is valid at the record's noise, wide for a noisy "
      "record and narrow for a clean one. Widths are on each target's learning scale (log10 for T2, µs otherwise "
      "its units). The kernel has one calibrated distribution: P vs NP from its own model, the short-range split from "
      "the kernel model, each temperature-scaled. p_power_law is p_power. The decision follows the same hierarchy: "
      f"the range is P where p_power_law ≥ {cal.calibration.kernel.threshold:.2f} (this model's class-balanced "
      "threshold: the training share of power-law samples, carried through the temperature), the kernel is then the "
      "power law, otherwise the likelier short-range kernel; so kernel, range and the probabilities never contradict, "
      f"also where no kernel reaches one half. Test rows: {len(c.rows.test)}, an independent noise draw at each SNR "
      "(goal: 0.88–0.92 at 90 %).\n")
    w(_header("target", "SNR bands (estimated SNR edges)", "half-width per band", "calibration rows per band"))
    for iv in intervals:
        w.row(iv.target, ", ".join(f"{e:g}" for e in iv.band_edges) or "one band",
              ", ".join(f"{q:.3g}" for q in iv.q), ", ".join(map(str, iv.n_calibration)))
    w("")
    targets = [iv.target for iv in intervals]
    w(_header("target", *(f"coverage, SNR {_snr(s)}" for s in TEST_SNRS), *(f"mean width, SNR {_snr(s)}" for s in TEST_SNRS)))
    for t in targets:
        reports = [cal.coverage_at(t, snr) for snr in TEST_SNRS]
        w.row(t, *(_f(x.coverage) for x in reports), *(f"{x.mean_width:.3g}" for x in reports))
    w("\nConditional coverage (by kernel family and by W tercile of the test rows):\n")
    groups = list(dict.fromkeys(x.group for x in cal.coverage if x.group != "all"))
    w(_header("target", "SNR", *groups))
    for t in targets:
        for snr in TEST_SNRS:
            w.row(t, _snr(snr), *(_f(cal.coverage_at(t, snr, g).coverage) for g in groups))
    w("")
    w(_header("kernel prediction sets", *(f"coverage, SNR {_snr(s.snr)}" for s in cal.sets),
              *(f"mean size, SNR {_snr(s.snr)}" for s in cal.sets)))
    w.row("3-class", *(_f(x.coverage) for x in cal.sets), *(_f(x.mean_set_size, 2) for x in cal.sets))
    w("")
    w(_header("task", "probabilities", "ECE"))
    for d in cal.reliability:
        w.row(d.task, d.label, _f(d.ece))
    w(f"\n![calibration](figures/{figs.calibration})\n")


def _measurements(w: _Doc, r: LearnResults, figs: FigurePaths) -> None:
    from pyecho.learn.design.study import TABLE_TASKS, table_value

    st = r.measurements
    w("## Which measurements tell what, and where the range is measurable\n")
    if st.selection is not None:
        sel = st.selection
        w(f"A linear probe (logistic + ridge on the referenced records, {sel.folds}-fold cross-validation on "
          f"{sel.n_design} samples, SNR {sel.snr:g}; the design study of `pyecho design`) on every sub-protocol met by "
          "forward selection over this dataset's measurements (out-of-fold scores; the test rows never choose):\n")
        tasks = [(t, title) for t, title in TABLE_TASKS if table_value(sel.evaluations[0].cv, t) is not None]
        w(_header("protocol", "time (ms)", "design score", *(title for _, title in tasks)))
        for e in sel.ranked():
            w.row(e.label, f"{e.time_us / 1000:.2f}", _f(e.score), *(_f(table_value(e.cv, t)) for t, _ in tasks))
        w(f"\n![selection](figures/{figs.selection})\n")
    w("The identifiability map: per kernel family, the width of a 90 % interval of L and of the kernel parameter "
      "(relative to a guess from the prior alone; 1 = the records say nothing more than the prior), across W and the kernel "
      f"parameter, from the same probe at SNR {st.identifiability.snr:g}:\n")
    w(_header("family", "quantity", *(f"out-of-fold R², {p}" for p in st.identifiability.protocols)))
    for kernel, quantity in dict.fromkeys((p.kernel, p.quantity) for p in st.identifiability.panels):
        w.row(kernel, quantity, *(_f(st.identifiability.panel(kernel, quantity, p).r2) for p in st.identifiability.protocols))
    w(f"\n![identifiability](figures/{figs.identifiability})\n")


def _limits(w: _Doc, r: LearnResults, figs: FigurePaths) -> None:
    lim = r.limits
    w("## Information limits: each model against the Cramér-Rao bound\n")
    if lim is None:
        w("Not run: the dataset carries no `pyecho sim` configuration to compute the bound on.\n")
        return
    w(f"What one record of this dataset's protocol ({lim.protocol}, {lim.lattice}x{lim.lattice}) allows at best, at "
      f"SNR {lim.snr:g}: the Cramér-Rao sd of every target from the Fisher information of the records (every nuisance "
      "and a receiver gain per measurement free, the dead time, the detuning draw's scatter as a full covariance; "
      "`pyecho limits`), as a root mean square over points along each family's kernel parameter. Beside it, the headline "
      f"models' test RMSE within each family at SNR {lim.snr:g}, and the prior's sd. A ratio far above 1: the records "
      "hold more than the model extracts (`pyecho fit` reaches for it, one record at a time); near 1: the model is at the "
      "limit. The probe's map above is a lower bound on what the records tell, this an upper one.\n")
    w(_header("family", "target", "test rows", "model RMSE", "Cramér-Rao sd", "ratio", "prior sd"))
    for row in lim.rows:
        w.row(row.kernel, row.target, row.n, f"{row.model_rmse:.3g}", f"{row.bound_sd:.3g}", f"{row.ratio:.1f}",
              f"{row.prior_sd:.3g}")
    w(f"\n![limits](figures/{figs.limits})\n")


def _trust(w: _Doc, r: LearnResults) -> None:
    from pyecho.learn.calibration.trust import GAIN_RANGE, SHIFT_SNR

    t = r.trust
    w("## Trust on measured echoes: fresh records as a spectrometer gives them\n")
    if t is None:
        w("Not run: the dataset carries no `pyecho sim` configuration to draw fresh samples from.\n")
        return
    w(f"{3 * t.n_per_kernel} samples drawn fresh from the dataset's prior (another seed: never a training or "
      "calibration row), simulated by the same engine, each given a random receiver phase and gain (log-uniform "
      f"{GAIN_RANGE[0]:g}–{GAIN_RANGE[1]:g}), noise (an independent draw per SNR) and the first {t.dead_time_us:g} µs "
      "after the excitation missing, then read by the saved predictor exactly as `pyecho predict` reads them.\n")
    targets = list(t.fresh[0].coverage)
    w(_header("SNR", "samples", "in domain", *(f"90 % coverage {x}" for x in targets), "F1 P", "macro-F1 3-class",
              *(f"R² {x}" for x in targets)))
    for f in t.fresh:
        w.row(_snr(f.snr), f.n, _f(f.in_domain), *(_f(f.coverage[x]) for x in targets), _f(f.scores.pvnp.f1_power),
              _f(f.scores.kernel3.f1_macro), *(_f(f.scores.regression[x].r2) for x in targets))
    w(f"\nOutside the prior (SNR {SHIFT_SNR:g}, random receiver): the fraction the guard flags (goal ≥ 0.95).\n")
    w(_header("records", "samples", "flagged out of domain"))
    for sh in t.shifted:
        w.row(sh.name, sh.n, _f(sh.flagged))
    w("")


def _curves(w: _Doc, r: LearnResults, figs: FigurePaths) -> None:
    lc = r.curves
    if lc is None:
        return
    w("## Learning curves\n")
    w("Every model refitted on growing, kernel-stratified subsets of the fit rows and scored on the same "
      f"{lc.n_test} noise-free test rows. A curve still rising at the right says more data would help; a flat one "
      "that the model, or the information in the echo, is the limit.\n")
    w(_header("model", "training rows", METRIC_TITLES[Metric.F1_POWER], METRIC_TITLES[Metric.F1_WEIGHTED], "R² L"))
    for p in lc.points:
        w.row(p.model, p.n_train, _f(p.pvnp.f1_power), _f(p.pvnp.f1_weighted), _f(p.L.r2))
    if figs.curves:
        w(f"\n![learning curves](figures/{figs.curves})\n")


def write_report(out: Path, r: LearnResults, figs: FigurePaths) -> None:
    """Write ``out/report.md`` (the figures are already in ``out/figures``)."""
    info, lay, sp = r.info, r.features.layout, r.split
    scores = r.model_scores()
    w = _Doc()
    w("# pyecho learn report\n")
    w(f"pyecho {info.pyecho_version} · {info.n_samples} samples measured by {info.protocol} · the 90° Hahn echo "
      f"{info.n_times} samples · seed {info.seed} · "
      f"n_jobs {info.n_jobs} · wall time before this report {info.wall_seconds_before_report} s\n")
    w(f"Split: stratified by {sp.stratified_by}, {sp.n_train} train / {sp.n_test} test (test fraction {sp.test_size}). "
      + ("All test scores are on the same held-out rows. " if info.paper_samples == info.n_samples else
         f"The paper's pipeline read a stratified subsample of {info.paper_samples} samples "
         f"({r.paper_split.n_train} train / {r.paper_split.n_test} test, its test rows among the test rows; "
         f"`Budget.paper_max_samples`, the paper's dataset size): its methods hold everything in memory. ")
      + "\"paper\" quotes Rao et al., PRR 5, 043098 (2023), each "
      "number with its metric and whether the paper's test set leaked; \"—\" where the paper gives no number. "
      f"Classification is always scored four ways: {', '.join(_class_cols())}.\n")
    w("Preprocessing: |M| min-max normalised per series over the full series; area of interest = "
      f"samples {lay.window[0]}..{lay.window[1] - 1} ({lay.t_window[0]:.2f}–{lay.t_window[-1]:.2f} µs), "
      f"centred on the echo sample {lay.echo_index} (t = {lay.t_us[lay.echo_index]:.2f} µs). "
      f"Pointwise features (PT): the {len(lay.pointwise_names)} window samples; polynomial features (PF): "
      f"cubic fits on {', '.join(map(str, lay.sections))} sections, x centred on each section, "
      f"{len(lay.polynomial_names)} features.\n")
    _the_table(w, r, scores)
    _headline(w, r, scores)
    _leak(w, r, figs)
    _comparison(w, scores)
    _run_section(w, r)

    w("## Fig. 2 — dataset\n")
    w(f"![dataset](figures/{figs.dataset})\n")
    km, ev = r.unsupervised.kmeans, r.unsupervised.pca.explained
    w("## Fig. 6 — PCA and k-means (paper Appendix B)\n")
    w(f"PCA explained variance: PC1 {ev[0]:.3f}, PC2 {ev[1]:.3f}. k-means SSE for K = 1..{km.k[-1]}: "
      f"{', '.join(f'{s:.4g}' for s in km.sse)}; elbow (largest second difference) K = {km.elbow} "
      f"(paper: {paper.KMEANS_ELBOW.shown}).\n")
    w(f"![pca](figures/{figs.pca_kmeans})\n")
    w(f"## Fig. 3 — beta-VAE latent spaces (beta = {BETA:g})\n")
    w(_header("input", "architecture", "epochs (kept)", "best val. reconstruction (BCE per echo)",
              "abs corr(LA1, W)", "abs corr(LA2, W)"))
    for v in (r.vae_full, r.vae_window):
        w.row(v.inputs.value, "-".join(map(str, v.arch)), f"{len(v.history)} ({v.best_epoch})", f"{v.val_recon_best:.2f}",
              f"{v.abs_corr_W[0]:.2f}", f"{v.abs_corr_W[1]:.2f}")
    w(f"\nPaper: the latent space {paper.VAE_ORDER.shown}.\n")
    w(f"![vae](figures/{figs.vae})\n\n![vae training](figures/{figs.vae_training})\n")

    _pvnp(w, r, figs)
    _zoo(w, r)
    _wscreen(w, r, figs)
    _kernel3(w, r, figs)
    _regression(w, r, figs)
    _candidates(w, r, figs)
    _calibration(w, r, figs)
    _measurements(w, r, figs)
    _limits(w, r, figs)
    _trust(w, r)
    _curves(w, r, figs)

    w("## Which measurements to make, and the saved models\n")
    grid, dead = r.data.grid, r.info.budget.dead_time_us
    w(f"To predict from a real sample, measure it as the training samples were, in this order, one file each "
      f"(`pyecho predict DIR` prints the same list): "
      + "; ".join(f"{k + 1}. `{m.text}` ({m.text.split('@')[0]} at {m.theta_deg:g}°, τ = {m.tau_us:g} µs, "
                  f"{grid.lengths[k]} samples of {grid.dt_us:g} µs)" for k, m in enumerate(grid.protocol))
      + f". Each record may start up to {dead:g} µs after its excitation (the receiver's dead time; "
      "`--start-us`). Then `pyecho predict DIR FILE1 FILE2 ...`.\n")
    w("`models/manifest.json` holds the pyecho version and the feature layout (time grid, window, normalisation, "
      "feature names); the forests are skops files (loaded with an allowlist of scikit-learn/NumPy types), the VAE "
      "weights are `.npz`. Use them with `pyecho predict DIR ECHO_FILE --model paper`; `pyecho predict DIR INPUT` "
      "runs the headline predictor in `models/headline/` (the models beyond the paper, calibrated and guarded).\n")
    w(_header("model", "file"))
    for m in r.models:
        w.row(m.key, f"`models/{m.file}`")
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(w.text())

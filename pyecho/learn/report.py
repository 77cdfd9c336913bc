"""``report.md`` of `pyecho learn`: markdown from :class:`LearnResults` and the figure files.

Every number comes from the run's results; every paper number from :mod:`pyecho.learn.paper`,
with the metric it is and whether the paper's test set leaked. Every comparison names its metric.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from pyecho.atomic import atomic_path
from pyecho.learn import paper
from pyecho.learn.base import (FEATURE_SETS, METRIC_TITLES, SUBSETS, TARGETS, TASK_TITLES, ClassScores, Evaluation,
                               FeatureSet, Metric, ModelScore, RegScores, Subset, Target, Task)
from pyecho.learn.figures import FigurePaths
from pyecho.learn.paper import PaperValue
from pyecho.learn.results import LearnResults
from pyecho.learn.vae import BETA, PATIENCE

CLASS_METRICS: tuple[Metric, ...] = tuple(Metric(f.name) for f in fields(ClassScores))
REG_METRICS: tuple[Metric, ...] = tuple(Metric(f.name) for f in fields(RegScores))
#: the paper's regression numbers by (target, subset)
PAPER_R2: dict[tuple[Target, Subset], PaperValue] = {
    (Target.W, Subset.ALL): paper.R2_W, (Target.ALPHA_XY, Subset.ALL): paper.R2_ALPHA_XY,
    (Target.L, Subset.P): paper.R2_L_POWER, (Target.ALPHA_Z, Subset.ALL): paper.R2_ALPHA_Z,
}
DASH = "—"


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
    for t in TARGETS:
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
      f"{_cv_phrase(b.prune_cv_folds)} at each pruning step. Beyond-the-paper gradient boosting: "
      f"≤ {b.hgb_max_iter} iterations with early stopping, {_cv_phrase(b.hgb_cv_folds)}. RBF SVM trained on a "
      f"stratified subsample of ≤ {b.svm_max_train} training rows. VAE: ≤ {b.vae_max_epochs} epochs (early stopping, "
      f"patience {PATIENCE}, 10 % validation), batch {b.vae_batch}. k-means fitted on ≤ {b.kmeans_max_samples} rows "
      f"(SSE on all). Seeds of the headline study: {', '.join(map(str, r.seeds.seeds))} "
      "(`--seeds`; each seed draws its own split and seeds its models).\n")
    w(_header("stage", "seconds"))
    for st in r.info.stage_seconds:
        w.row(st.stage, st.seconds)
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
    w.row("HGB (beyond the paper)", "all", *_class_vals(r.beyond.kernel3.scores))
    w(f"\nPaper: gaussian vs RKKY {paper.KERNEL3_SEPARABLE.shown}. "
      f"{METRIC_TITLES[Metric.F1_POWER]} here is that of the power class among three.\n")
    w(f"![kernel3](figures/{figs.kernel3})\n")


def _regression(w: _Doc, r: LearnResults, figs: FigurePaths) -> None:
    w("## Fig. 5 — regression (random forests)\n")
    w(_header("target", "subset", "features", "OOB R²", "test R²", "test MAE", "paper"))
    for t in TARGETS:
        for s in SUBSETS:
            for fs in FEATURE_SETS:
                res = r.regression.get(t, s, fs)
                w.row(t.value, s.value, fs.value, _f(res.r2_oob), _f(res.scores.r2), f"{res.scores.mae:.4g}",
                      _paper_cell(PAPER_R2.get((t, s))))
    w("\nTop-10 features (all kernels):\n")
    w(_header("target", "features", "top 10 (importance)"))
    for t in TARGETS:
        for fs in FEATURE_SETS:
            top = ", ".join(f"{f.name} ({f.importance:.3f})" for f in r.regression.get(t, Subset.ALL, fs).top_features)
            w.row(t.value, fs.value, top)
    w(f"\n![regression](figures/{figs.regression})\n")
    w("## Figs. 10–12 — feature ranking for W, L, alpha_xy\n")
    w(f"![W](figures/{figs.importance_W})\n\n![L](figures/{figs.importance_L})\n\n"
      f"![alpha_xy](figures/{figs.importance_alpha_xy})\n")


def _beyond(w: _Doc, r: LearnResults, scores: tuple[ModelScore, ...]) -> None:
    hb = r.beyond
    w("## Beyond the paper (clearly not the paper's protocol)\n")
    w("HistGradientBoosting (class_weight=\"balanced\" instead of SMOTE, early stopping on 10 % of the training part) "
      f"on {hb.features} features, same split as the main run (seed {hb.seed}).\n")
    w(_header("task", "metric", "paper's method (RF, pointwise)", "beyond (HGB)"))
    main = {s.task: s for s in scores if s.evaluation == Evaluation.PAPER}
    for res in (hb.pvnp, hb.kernel3):
        for m in CLASS_METRICS:
            w.row(TASK_TITLES[res.task], METRIC_TITLES[m], _pm(main[res.task], m), _f(getattr(res.scores, m.value)))
    for res in hb.regression:
        w.row(f"{res.target.value}, all kernels", METRIC_TITLES[Metric.R2], _pm(main[res.target], Metric.R2),
              _f(res.scores.r2))
    w("")


def write_report(out: Path, r: LearnResults, figs: FigurePaths) -> None:
    """Write ``out/report.md`` (the figures are already in ``out/figures``)."""
    info, lay, sp = r.info, r.features.layout, r.split
    scores = r.model_scores()
    w = _Doc()
    w("# pyecho learn report\n")
    w(f"pyecho {info.pyecho_version} · {info.n_samples} echoes × {info.n_times} samples · seed {info.seed} · "
      f"n_jobs {info.n_jobs} · wall time before this report {info.wall_seconds_before_report} s\n")
    w(f"Split: stratified by {sp.stratified_by}, {sp.n_train} train / {sp.n_test} test (test fraction {sp.test_size}). "
      "All test scores are on the same held-out rows. \"paper\" quotes Rao et al., PRR 5, 043098 (2023), each "
      "number with its metric and whether the paper's test set leaked; \"—\" where the paper gives no number. "
      f"Classification is always scored four ways: {', '.join(_class_cols())}.\n")
    w("Preprocessing: |M| min-max normalised per series over the full series; area of interest = "
      f"samples {lay.window[0]}..{lay.window[1] - 1} ({lay.t_window[0]:.2f}–{lay.t_window[-1]:.2f} µs), "
      f"centred on the echo sample {lay.echo_index} (t = {lay.t_us[lay.echo_index]:.2f} µs). "
      f"Pointwise features (PT): the {len(lay.pointwise_names)} window samples; polynomial features (PF): "
      f"cubic fits on {', '.join(map(str, lay.sections))} sections, x centred on each section, "
      f"{len(lay.polynomial_names)} features.\n")
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
    _beyond(w, r, scores)

    w("## Saved models\n")
    w("`models/manifest.json` holds the pyecho version and the feature layout (time grid, window, normalisation, "
      "feature names); the forests are skops files (loaded with an allowlist of scikit-learn/NumPy types), the VAE "
      "weights are `.npz`. Use them with `pyecho predict DIR ECHO_FILE`.\n")
    w(_header("model", "file"))
    for m in r.models:
        w.row(m.key, f"`models/{m.file}`")
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(w.text())

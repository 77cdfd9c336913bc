"""The fit's and the bound's default draw counts, in one place for the library and the commands.

A module without imports: the commands show these as their options' defaults without loading
the fit (and torch) at start-up.
"""

#: a fit's error model: detuning draws simulated with site groups, the first of them that the
#: model's mean averages, plain draws added to its collective part (docs/fit.md measures the
#: error model's convergence in them), and independent draws the estimates' covariance is
#: measured against
FIT_DRAWS, FIT_MEAN_DRAWS, FIT_MORE_DRAWS, FIT_CHECK_DRAWS = 8, 4, 64, 32
#: of the mean's draws, those whose mean's Jacobian steers the minimiser: a mean over four draws
#: brings the gaussian's range towards its bound, and steering by two gives the same estimates in
#: about a fifth less time than steering by four (docs/fit.md, "Four draws in the mean, steered by
#: two")
FIT_STEERING_DRAWS = 2
#: the same for a bound's scatter covariance: more plain draws than a fit's (a bound is made once
#: per point and is only as good as its covariance), and a mean over more draws
BOUND_DRAWS, BOUND_MEAN_DRAWS, BOUND_MORE_DRAWS = 8, 4, 128
#: a family the learned model gives less than this is not fitted (docs/fit.md: how often the
#: true family falls below it on fresh records)
DEFAULT_MIN_PROBABILITY = 0.02
#: how the families' fits become their probabilities (pyecho.fit.estimate.FamilyComparison):
#: ``reference`` -- every family's likelihood ratio against the best-fitting one, read under the
#: best-fitting one's error model; ``every`` -- the ratios averaged over every fitted family's
#: error model; ``own`` -- each family's likelihood under its own error model (its determinant
#: included). The default, ``every``, was chosen on 20 gaussian and RKKY records and confirmed on
#: 20 others, as written down before they were fitted (docs/fit.md, "The family rule").
FAMILY_RULES = ("reference", "every", "own")
DEFAULT_FAMILY_RULE = "every"
#: the smallest lattice side a fit simulates on: its site groups need at least four sites each
#: (pyecho.fit.problem.default_site_groups)
MIN_FIT_LATTICE = 4

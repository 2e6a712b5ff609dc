"""The shared engines: what several model packages train or solve with.

The layering reads downward, and nothing imports upward::

    training/, serving/, selection/, evaluation/, persistence, cli/   (ask the records)
    models/<name>/          one package per model: spec, parts, and its own engines
    solvers/, objectives/   engines and objectives several models share
    kernels/, data/, plumbing (the C++ kernels, the data, the helpers)

The rule for where an engine lives: an engine (solver, sampler, objective, row solve)
that ONE model uses lives in that model's package (``mfjax.models.implicit_als``:
the iALS objective, half-steps, layouts, mesh and solvers; ``mfjax.models.bpr``: the BPR
objective, its sampler/solver and Newton fold-in; ``mfjax.models.bayesian_fm``: the FM
Gibbs sampler; ``mfjax.models.als.solver``: the ALS solver; ``mfjax.models.logistic_mf``).
An engine two or more models use lives here, below every model package, and never
imports one:

============================ =============================================================
module                       shared by
============================ =============================================================
``minibatch/``               the Optax minibatch loop: MF; BPR, ImplicitALS (``optax``) and
                             LogisticMF use its optimizers and host init
``als/``                     the exact ridge sweep and its layout: ALS, the Gibbs samplers
                             (BayesianMF, BayesianFM) and :func:`rows.ridge_rows`
``gibbs/``                   the Gibbs chain and sampler of BayesianMF, which BayesianFM's
                             sampler extends; ``gibbs/posterior`` the kept samples both use
``rows``                     the ridge and posterior-mean row solves (MF, ALS, BayesianMF,
                             BayesianFM), :func:`rows.checked_rows`
``fm_blocks``                the relation blocks of a factorization machine (attribute and
                             implicit-feedback rows): BayesianFM's sampler layout, FM
``base``, ``hardware``,      the solver protocol, the run's hardware, memory estimates,
``memory``, ``finite``,      divergence checks, the vectorized-trials helpers
``trials``
============================ =============================================================

The explicit objective (:mod:`mfjax.objectives.explicit`, with the biased-MF
:class:`~mfjax.objectives.explicit.Params`) is shared by MF, ALS, BayesianMF and
BayesianFM and stays in :mod:`mfjax.objectives`. When a second model starts to use an
engine of one model's package, the engine moves down here (``git mv``) rather than being
imported sideways from the other package.
"""

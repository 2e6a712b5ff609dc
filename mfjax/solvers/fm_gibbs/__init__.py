"""mfjax.solvers.fm_gibbs: the Bayesian factorization machine's Gibbs sampler."""

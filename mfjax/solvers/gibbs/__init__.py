"""mfjax.solvers.gibbs."""

"""mfjax.solvers.bpr."""

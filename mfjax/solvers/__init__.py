"""mfjax.solvers."""

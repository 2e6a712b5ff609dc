"""mfjax.solvers.als."""

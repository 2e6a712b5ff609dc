"""mfjax.solvers.ials."""

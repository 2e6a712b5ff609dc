"""mfjax.solvers.minibatch."""

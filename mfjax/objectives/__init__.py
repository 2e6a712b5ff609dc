"""mfjax.objectives."""

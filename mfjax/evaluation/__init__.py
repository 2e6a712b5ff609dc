"""mfjax.evaluation."""

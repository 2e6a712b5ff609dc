"""mfjax.serving."""

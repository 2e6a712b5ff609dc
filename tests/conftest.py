import jax

# Gradient tests compare in float64; broadcasting bugs must fail loudly.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

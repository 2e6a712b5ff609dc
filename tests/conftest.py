import os

import jax

# The persistent compilation cache (mfjax.jit_cache) stays off in tests and the processes
# they start, so no test depends on what an earlier run compiled.
os.environ.setdefault("MFJAX_JIT_CACHE", "0")

# Gradient tests compare in float64; broadcasting bugs must fail loudly.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

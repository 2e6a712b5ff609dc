"""mfjax.evaluation: accuracy and ranking metrics (:mod:`.metrics`) and gradient checks
(:mod:`.gradcheck`)."""

from . import gradcheck, metrics  # noqa: F401 - mfjax.evaluation.gradcheck after `import mfjax`

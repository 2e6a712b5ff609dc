"""mfjax's setuptools build: the Python package, then its C++ CPU kernels.

The project is described in pyproject.toml; this file only adds the kernel build to
``build_py`` (so ``pip install .``, ``pip install -e .`` and a wheel built from the sdist
all run it). :func:`mfjax.kernels.install.build_all` compiles the three kernel libraries
with the system compiler against the XLA FFI headers of the jaxlib in the build
environment, into the verified kernel cache; it never fails the install.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyAndKernels(build_py):
    """``build_py``, then the C++ kernels (:mod:`mfjax.kernels.install`)."""

    def run(self):
        super().run()
        sys.path.insert(0, HERE)
        try:
            from mfjax.kernels import install
        except Exception as exc:  # noqa: BLE001 - no jax in the build environment, say
            print(f"mfjax: C++ kernels not built: the build step could not import jax ({exc}); "
                  "fits run the XLA routes (`mfjax build-kernels` builds them later)",
                  file=sys.stderr, flush=True)
            return
        finally:
            sys.path.remove(HERE)
        install.build_all()


setup(cmdclass={"build_py": BuildPyAndKernels})

"""Build hook: a wheel carries the default model's weights as package data.

The weights live once, in the repository's top-level weights/ folder (where exports are
committed); building copies the default model's current file into hificodec/weights/ of the
build, which ``hificodec.zoo`` searches last (``weights_dirs``). Everything else about the
package is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DEFAULT_MODEL = "hific-cpu-vbr"  # hificodec.zoo.DEFAULT_MODEL (the package cannot be imported here)


class BuildWithWeights(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install runs from the checkout, whose weights/ zoo finds itself
        source = ROOT / "weights" / f"{DEFAULT_MODEL}.safetensors"
        if not source.is_file():
            raise SystemExit(f"{source} is missing: a wheel without the default model could not decode anything")
        target = Path(self.build_lib) / "hificodec" / "weights"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target / source.name)


setup(cmdclass={"build_py": BuildWithWeights})

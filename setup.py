"""Ships the top-level recipes/, templates/ and examples/ inside the wheel as ``ec2kit/data/*``.

Everything else is in pyproject.toml. The source tree holds no symlink: a copy made without
symlink support still works, and ``ec2kit.paths.data_dir`` finds these folders in either place.
"""

from setuptools import find_packages, setup

DATA = {
    "recipes": ["*.toml"],
    "templates": ["*.j2", "**/*.j2"],
    "examples": ["*.sh", "*.py", "*.ipynb", "*.toml"],
}

setup(
    packages=find_packages(include=["ec2kit", "ec2kit.*"]) + [f"ec2kit.data.{kind}" for kind in DATA],
    package_dir={f"ec2kit.data.{kind}": kind for kind in DATA},
    package_data={"ec2kit": ["py.typed"], **{f"ec2kit.data.{kind}": globs for kind, globs in DATA.items()}},
)

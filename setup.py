"""Maps the top-level folders onto the one import name the distribution claims.

scheduler/, runtimes/ and coordination/ are installed as fnworker.scheduler,
fnworker.runtimes and fnworker.coordination, so the distribution never shadows a
user's own module called scheduler.py or config.py inside the thread runtime.
Everything else about the package lives in pyproject.toml.
"""

from setuptools import find_packages, setup

ROOTS = ("scheduler", "runtimes", "coordination")

setup(
    packages=[
        f"fnworker.{name}"
        for root in ROOTS
        for name in (root, *(f"{root}.{sub}" for sub in find_packages(root)))
    ],
    package_dir={f"fnworker.{root}": root for root in ROOTS},
    package_data={"fnworker.scheduler": ["api/*.json"]},
)

"""What pyproject.toml cannot say: the repository's top-level ``device_profiles/`` ships inside the package, as
``edgedet/device_profiles``, so that a wheel or a non-editable install has the shipped profiles."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["edgedet*"]), "edgedet.device_profiles"],
    package_dir={"edgedet.device_profiles": "device_profiles"},
    package_data={"edgedet.device_profiles": ["*.yaml", "*/*.yaml", "*/*.json"]},
)

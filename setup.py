# The cffi extension is declared here because PEP 621 has no field for it;
# everything else lives in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["src/greenpatch/hub/_libev_build.py:ffibuilder"])

# The C extension: setuptools compiles it with $CC and $CFLAGS/$LDFLAGS
# from the environment, which the conda compiler's activation sets.
from setuptools import Extension, setup

setup(ext_modules=[Extension("hello_ext._speedups", ["src/hello_ext/_speedups.c"])])

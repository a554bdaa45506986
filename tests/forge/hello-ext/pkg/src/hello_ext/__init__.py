"""A python package with a C extension for cleave's toolchain test."""

from hello_ext._speedups import triple

__all__ = ["triple"]

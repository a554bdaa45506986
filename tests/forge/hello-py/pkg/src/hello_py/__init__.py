"""A pure python package for cleave's noarch: python test."""

GREETING = "hello from a noarch python package"

"""vissl_lite: a YAML-configured self-supervised trainer in the VISSL style."""

__version__ = "0.1.0"

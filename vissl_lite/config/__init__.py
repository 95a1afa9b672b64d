"""Configuration: the typed schema, validation, inference, and Hydra composition.

Import the submodules (`vissl_lite.config.load`, `.schema`, ...) directly.
"""

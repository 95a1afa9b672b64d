"""Methods with state of their own, one module each; importing this package registers them."""

from . import dino, moco, swav  # noqa: F401

"""Name -> builder tables that users extend from their own code (optimizers, losses, heads,
trunks, methods, parameter-group constructors). Validation reads the live tables, so a name
registered before the config is validated is accepted like a built-in one."""

from typing import Any, Callable, Dict

from .errors import ConfigError


class Registry(dict):
    """A dict of name -> entry whose names are taken once, with the kind of thing it holds for
    messages ("loss", "trunk", ...).

        LOSSES = Registry("loss")

        @LOSSES.register("my_loss")
        def build_my_loss(loss_cfg): ...
    """

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        # Other spellings of a name (MMEngine's class names for optimizers): `in`, `[]` and
        # `get` take them; iteration and messages list the registered names only.
        self.aliases: Dict[str, str] = {}

    def add(self, name: str, entry: Any) -> None:
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = entry

    def add_alias(self, alias: str, name: str) -> None:
        if alias in self:
            raise ValueError(f"{self.kind} {alias!r} is already registered")
        self.aliases[alias] = name

    def __contains__(self, name) -> bool:
        return super().__contains__(self.aliases.get(name, name))

    def __getitem__(self, name):
        return super().__getitem__(self.aliases.get(name, name))

    def get(self, name, default=None):
        return super().get(self.aliases.get(name, name), default)

    def register(self, name: str) -> Callable:
        """A decorator adding the decorated builder (or class) under `name`."""

        def add(builder):
            self.add(name, builder)
            return builder

        return add

    def check(self, name, key: str, note: str = "") -> None:
        """Raise ConfigError naming `key` unless `name` is registered."""
        if name not in self:
            raise ConfigError(key, name, "one of " + ", ".join(sorted(self)), note)

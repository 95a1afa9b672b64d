"""Name -> builder tables that users extend from their own code (optimizers, losses, heads)."""

from typing import Callable, Dict


def registrar(table: Dict[str, Callable], kind: str):
    """A decorator factory adding entries to `table`; a name can be registered once."""

    def register(name: str):
        def add(builder):
            if name in table:
                raise ValueError(f"{kind} {name!r} is already registered")
            table[name] = builder
            return builder

        return add

    return register

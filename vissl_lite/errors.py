"""The exceptions a user sees, on the ground floor so every layer can raise them.

The maths (optim, losses, models, data) raise plain ValueError; the resolution layer and the
builders translate those into ConfigError with the full key path.
"""


class ConfigError(ValueError):
    """A bad config value: `<full key>: got <value>; allowed: <what is allowed> (<note>)`."""

    def __init__(self, key: str, got, allowed: str, note: str = ""):
        self.key, self.got, self.allowed, self.note = key, got, allowed, note
        message = f"{key or '<root>'}: got {abbreviate(got)}; allowed: {allowed}"
        super().__init__(message + (f" ({note})" if note else ""))


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used as asked; the message lists what does not fit."""


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, a run directory in use); the message says why."""


def abbreviate(value, limit: int = 160) -> str:
    """repr(value), shortened in the middle past `limit` characters: no message dumps a config."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit // 2]} ... {text[-limit // 4:]}"

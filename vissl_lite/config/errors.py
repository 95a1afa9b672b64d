"""The one exception type for bad configuration."""


class ConfigError(ValueError):
    """A bad config value: `<full key>: got <value>; allowed: <what is allowed> (<note>)`."""

    def __init__(self, key: str, got, allowed: str, note: str = ""):
        self.key, self.got, self.allowed = key, got, allowed
        message = f"{key or '<root>'}: got {got!r}; allowed: {allowed}"
        super().__init__(message + (f" ({note})" if note else ""))

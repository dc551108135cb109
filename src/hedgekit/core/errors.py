"""Error types shared by every layer."""


class HedgekitError(Exception):
    """Base class of every error hedgekit raises on purpose."""


class ParameterError(HedgekitError, ValueError):
    """A strategy or instrument parameter is invalid. The message names the parameter."""

    def __init__(self, name: str, value: object, problem: str) -> None:
        self.name = name
        self.value = value
        super().__init__(f"{name}={value!r}: {problem}")


def require_positive(name: str, value: float) -> float:
    if not isinstance(value, int | float) or value != value or value <= 0:
        raise ParameterError(name, value, "must be a positive number")
    return float(value)

"""One kind of error for bad input, with one style of message.

Every public entry point refuses bad input by raising :class:`InputError`, whose message is a
single sentence naming the field, the value that was given and what is allowed. Nothing is
written or changed before the error is raised.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: the message names the field, the value given and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        given = "nothing was given" if value is None else f"got {_show(value)}"
        super().__init__(f"{field}: {given}; {allowed}.")


class UnitError(InputError):
    """A quantity with a missing, unknown or wrong-dimension unit."""


class Verbatim(str):
    """A value a message shows as it is written, without quotes ('1,000,000 doses', "'CL' on line 3")."""


def _show(value: object) -> str:
    if isinstance(value, Verbatim):
        return str(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)

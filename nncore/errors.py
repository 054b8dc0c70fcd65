"""Exceptions of nncore, and the shared wording of its error messages."""
import difflib
from typing import Iterable


class ModelFormatError(ValueError):
    """A model file (or pickled network, or network config) is damaged,
    hostile, from a newer format version, or names an unregistered class.

    A subclass of ValueError, raised by `nncore.load` and friends; the
    message says what is wrong with the file.

    Examples
    --------
    >>> import nncore
    >>> with open("damaged.nnc", "wb") as f:
    ...     _ = f.write(b"not a model")
    >>> try:
    ...     nncore.load("damaged.nnc")
    ... except nncore.ModelFormatError as error:
    ...     print(type(error).__name__)
    ModelFormatError
    """


def in_layer(index: int, layer, message) -> str:
    """`message` prefixed with the layer's position and type, the way every
    error about a layer of a network starts: "layer 2 (Dense): ..."."""
    name = type(layer).__name__
    text = str(message)
    if text.startswith(name + ": "):
        text = text[len(name) + 2:]
    return f"layer {index} ({name}): {text}"


def unknown_name(kind: str, name, choices: Iterable[str], hint: str = "") -> str:
    """The message for an unknown `kind` name: the closest valid names
    ("did you mean ...?") and then every valid name."""
    choices = sorted(choices)
    message = f"unknown {kind} {name!r}"
    if isinstance(name, str):
        by_lower = {c.lower(): c for c in choices}
        close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
        if close:
            names = [repr(by_lower[c]) for c in close]
            listed = names[0] if len(names) == 1 else \
                ", ".join(names[:-1]) + " or " + names[-1]
            message += f"; did you mean {listed}?"
    return f"{message} (choose one of {choices}{hint})"

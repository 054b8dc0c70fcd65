"""Exceptions of nncore."""


class ModelFormatError(ValueError):
    """A model file (or pickled network, or network config) is damaged,
    hostile, from a newer format version, or names an unregistered class."""


def in_layer(index: int, layer, message) -> str:
    """`message` prefixed with the layer's position and type, the way every
    error about a layer of a network starts: "layer 2 (Dense): ..."."""
    name = type(layer).__name__
    text = str(message)
    if text.startswith(name + ": "):
        text = text[len(name) + 2:]
    return f"layer {index} ({name}): {text}"

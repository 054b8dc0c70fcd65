"""Exceptions of nncore."""


class ModelFormatError(ValueError):
    """A model file (or pickled network, or network config) is damaged,
    hostile, from a newer format version, or names an unregistered class."""

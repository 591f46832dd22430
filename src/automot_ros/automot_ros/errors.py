"""Exceptions shared by the library and the nodes."""


class InputError(ValueError):
    """A sensor or route input that cannot be used (bad encoding, size, NaN, time order)."""

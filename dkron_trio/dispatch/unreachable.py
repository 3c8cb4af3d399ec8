"""The one error of asking a node that cannot be reached now."""


class Unreachable(Exception):
    """A node that cannot be asked now."""

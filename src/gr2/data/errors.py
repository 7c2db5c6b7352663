"""Errors for bad input data: each names the file, line and field at fault."""


class DatasetError(ValueError):
    """A dataset folder or file cannot be used; the message says which and why."""

"""Errors the directory raises: each message is meant to be shown to the operator as is."""


class DirectoryError(Exception):
    """A refused directory operation (bad identifier, unknown account, duplicate...)."""

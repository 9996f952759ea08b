"""Errors that the command line reports as one line and a non-zero exit."""

from __future__ import annotations


class ManytaskError(Exception):
    """Base class: the message is a single line naming what is wrong and where."""

    exit_code = 2


class ConfigError(ManytaskError):
    """A configuration file or value is invalid (names the field)."""


class DataError(ManytaskError):
    """Input data is missing or malformed (names the file, row or task)."""

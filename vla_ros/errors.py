"""Errors caused by the user's input (files, settings, data); light to import (no torch)."""

from __future__ import annotations

from vla_ros.config import ConfigError


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message says why and what to do."""


class InputError(ValueError):
    """Bad input to the inference API; the message says what was expected."""


class UserError(Exception):
    """Any other error the user can fix; printed as one clear line."""


USER_ERRORS = (ConfigError, CheckpointError, InputError, UserError, FileNotFoundError, FileExistsError)

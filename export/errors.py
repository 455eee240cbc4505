"""Bad input (`common.errors.UserError`, exit 2), and a variant unlike PyTorch (exit 1)."""

from common.errors import UserError

__all__ = ["ParityError", "UserError"]


class ParityError(Exception):
    """An exported variant disagrees with PyTorch beyond its limit (exit 1, not a usage error)."""

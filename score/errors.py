"""Bad input: `common.errors.UserError`, re-exported so this stage's modules import it locally."""

from common.errors import UserError

__all__ = ["UserError"]

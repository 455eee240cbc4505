"""The two failures a stage reports in one line (`common.cli.run_stage`), not as a traceback."""


class UserError(Exception):
    """A problem with the user's input or flags, with the fix in its message (exit 2)."""


class ParityError(Exception):
    """An exported variant disagrees with PyTorch beyond its limit (exit 1, not a usage error)."""

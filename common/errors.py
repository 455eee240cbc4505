"""The one exception type for bad input: `__main__` turns it into a one-line message and exit 2."""


class UserError(Exception):
    """A problem with the user's input or flags, with the fix in its message."""

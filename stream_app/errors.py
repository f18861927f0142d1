"""The errors a user sees as one line: the CLI exits with code 2 and prints the message, the pages show it.

The lowest floor of the package (it imports nothing), so any layer can raise them without importing a higher one.
"""


class InputError(ValueError):
    """An input that cannot be read (missing, empty, not a video, truncated); the message is meant for the user as
    it is."""


class FrameError(ValueError):
    """A frame that cannot be processed (wrong shape, dtype, empty)."""


class UsageError(ValueError):
    """A command-line value that does not fit (reported like bad input: exit 2, one line)."""

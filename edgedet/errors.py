"""The two kinds of expected failure; the CLI turns each into one line on stderr and an exit code."""


class EdgedetError(Exception):
    """Something failed while running (exit 1)."""

    exit_code = 1


class UsageError(EdgedetError):
    """Bad usage or bad input: the message says what was wrong and what to do (exit 2)."""

    exit_code = 2

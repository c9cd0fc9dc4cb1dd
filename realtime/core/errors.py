"""Errors that carry a message meant for the user: CLIs print the message on one line and exit 2."""


class UserInputError(Exception):
    """Bad input from the user (a missing file, an unreadable image, a wrong layout).

    The message names the file or value at fault and says what was expected; command-line entry points
    print it on one line (no traceback) and exit with code 2.
    """


class OptionError(UserInputError):
    """A bad value in an options dataclass. ``option`` is the field's name and the message says what is wrong
    with it (``fps must be a positive number, got 0``); a command that took the value from a flag of its own
    names that flag instead (:func:`realtime.cli.arguments.flags_for_options`)."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option} {problem}")
        self.option = option
        self.problem = problem

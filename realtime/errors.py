"""Errors that carry a message meant for the user: CLIs print the message on one line and exit 2."""


class UserInputError(Exception):
    """Bad input from the user (a missing file, an unreadable image, a wrong layout).

    The message names the file or value at fault and says what was expected; command-line entry points
    print it on one line (no traceback) and exit with code 2.
    """

"""The one exception type that reaches users as a message instead of a traceback."""


class FaceganError(Exception):
    """A problem the user can fix (bad input file, missing weights, wrong option...).

    The CLI prints ``facegan: error: <message>`` and exits with status 2. Messages name the
    file involved and say what is wrong with it, and where possible what to do about it.
    """


class BadImageError(FaceganError):
    """One image could not be read: its name and the reason are in the message."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


class WriteError(FaceganError, OSError):
    """A file could not be written (disk full, read-only folder, a folder in the way...).

    Also an :class:`OSError`, so code that already handles failed writes keeps working; being a
    :class:`FaceganError`, it reaches the user as one line naming the file.
    """

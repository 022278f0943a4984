"""The one exception type that surfaces turn into a one-line message for the user."""


class QAError(Exception):
    """A problem the user can act on: bad input, a missing index, a locked index.

    Surfaces print ``str(error)`` on one line (CLI: stderr and exit code 2; API: a 4xx
    JSON body) and never a traceback.
    """


class NotFound(QAError):
    """The thing asked for (an article id) does not exist (HTTP 404)."""


class Unsupported(QAError):
    """A file type the corpus can't take (HTTP 415)."""


class TooLarge(QAError):
    """A request or upload over its size limit (HTTP 413)."""


class Busy(QAError):
    """The index is being written by someone else, or every answer slot is taken (HTTP 409/503)."""

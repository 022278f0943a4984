"""The one exception type that surfaces turn into a one-line message for the user."""


class QAError(Exception):
    """A problem the user can act on: bad input, a missing index, a locked index.

    Surfaces print ``str(error)`` on one line (CLI: stderr and exit code 2; API: a 4xx
    JSON body) and never a traceback.
    """

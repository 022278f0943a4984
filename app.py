"""The web entry point: `python app.py [--host H] [--port P]`.

The web chat and HTTP API are not built yet; until they are, this explains where to go
instead of failing obscurely. The command-line product (`qa index`, `qa ask`, `qa chat`)
is complete.
"""

import sys


def main() -> int:
    print(
        "The web chat and HTTP API are not available yet. Use the command line meanwhile:\n"
        "  qa index            # index corpus/articles/\n"
        '  qa ask "QUESTION"   # one answer with [n] citations\n'
        "  qa chat             # a conversation in the terminal",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())

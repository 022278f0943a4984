"""The web entry point: ``python app.py [--host H] [--port P]``, the same as ``qa serve``.

Serves the web chat at ``/``, the REST API under ``/api`` (docs at ``/docs``) and the
OpenAI-compatible endpoint under ``/v1``, on 127.0.0.1:7860 unless told otherwise.
"""

import sys

from qa.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))

"""``python -m fashion.serve``: the same as ``fashion-serve``."""

import sys

from fashion.serve.cli import main

if __name__ == "__main__":
    sys.exit(main())

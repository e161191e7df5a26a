"""``python -m verify`` is ``theorylab verify``."""

import sys

from theorylab.cli import main

if __name__ == "__main__":
    sys.exit(main(["verify", *sys.argv[1:]]))

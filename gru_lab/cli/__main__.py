"""`python -m gru_lab.cli`: the same commands, without the console script's filter of TensorFlow's log lines."""

import sys

from gru_lab.cli import app

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

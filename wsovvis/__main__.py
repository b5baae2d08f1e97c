import sys

from wsovvis.cli import run

sys.exit(run())

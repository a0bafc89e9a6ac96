"""``python -m ragft`` runs the command line."""

import sys

from ragft.cli import main

sys.exit(main())

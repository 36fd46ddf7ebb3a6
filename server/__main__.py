"""``python -m graphgate.server`` runs the ``graphgate`` command."""

import sys

from graphgate.server.cli import main

sys.exit(main())

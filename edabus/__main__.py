"""``python -m edabus`` runs the command line."""

import sys

from ._cli._main import main

sys.exit(main())

"""Entry point for ``python -m provlens`` (the same as the ``provlens`` command)."""

import sys

from provlens.cli import main

sys.exit(main())

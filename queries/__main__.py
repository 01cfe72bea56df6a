"""Entry point for ``python -m queries``."""

import sys

from queries.cli import main

sys.exit(main())

"""`python -m bot` runs the `sietch` command."""

import sys

from bot.cli import main

sys.exit(main())

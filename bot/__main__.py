"""`python -m bot` runs the `sietch` command."""

import sys

from bot.cli.main import main

sys.exit(main())

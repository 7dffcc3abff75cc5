import sys

from rasekit.cli import main

sys.exit(main())

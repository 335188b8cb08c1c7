"""``python -m workbench``: hands over to the command line in ``workbench.cli``."""
from workbench.cli import main

raise SystemExit(main())

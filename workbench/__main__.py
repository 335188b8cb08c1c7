"""``python -m workbench``: hands over to the command line in ``workbench.cli``.

Guarded, so a process that imports this module again (a spawned Dask or multiprocessing
worker re-importing ``__main__``) does not run the command a second time."""
from workbench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

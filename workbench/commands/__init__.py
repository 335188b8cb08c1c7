"""Sub-commands of ``python -m workbench``: one module each, found by ``workbench.cli``."""

"""`python -m pyecho_cli` runs the command line (same as the `pyecho` script)."""
from pyecho_cli.app import main

main()

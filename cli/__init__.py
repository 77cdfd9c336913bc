"""The pyecho command line (installed as the package pyecho_cli)."""

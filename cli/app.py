"""pyecho command-line application: each command lives in its own module of this package."""
import typer

app = typer.Typer(
    help="pyecho: simulate NMR Hahn echoes of mean-field coupled spins and learn from them.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def main() -> None:
    app()


# Each module registers its commands on `app` when imported.
# in workflow order, which is the order `pyecho --help` lists them
from pyecho_cli import echo, sweep, sim, design, limits, learn, fit, demo, bench, converge, info, julia  # noqa: E402,F401,I001

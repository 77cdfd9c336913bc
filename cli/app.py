"""pyecho command-line application."""
import typer

app = typer.Typer(help="pyecho: NMR spin-echo simulation and learning.", no_args_is_help=True)


def main() -> None:
    app()

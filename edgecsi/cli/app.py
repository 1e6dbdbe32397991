"""The typer application object every command module registers on."""

import typer

app = typer.Typer(
    name="edgecsi",
    help="WiFi sensing from CSI: parse, train, adapt, export, and run on the gateway.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """WiFi sensing from CSI: parse, train, adapt, export, and run on the gateway."""
    # A callback keeps typer in multi-command mode even while only one command module is
    # present; without it `edgecsi datasets` collapses to a bare `edgecsi`.

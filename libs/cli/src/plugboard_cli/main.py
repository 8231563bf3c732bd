"""The `plugboard` command. Each area lives in its own module and registers here."""

from __future__ import annotations

import typer
from connector_registry.cli import app as registry_app
from credential_vault.cli import app as vault_app

from plugboard_cli.dev import dev
from plugboard_cli.keys import keys
from plugboard_cli.migrate import migrate, topics
from plugboard_cli.token import token

app = typer.Typer(
    name="plugboard",
    help="Plugboard: local dev stack, dev tokens, migrations, topics and vault keys.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold keys and DSNs
)
app.command()(dev)
app.command()(token)
app.command()(migrate)
app.command()(topics)
app.command()(keys)
app.add_typer(vault_app, name="vault")  # `plugboard vault ...`: owned by credential-vault
app.add_typer(registry_app, name="registry")  # `plugboard registry ...`: connector-registry

if __name__ == "__main__":
    app()

"""`plugboard token`: a dev JWT signed with the platform key, for curl and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from plugboard_servicekit.auth import mint_token

from plugboard_cli.keys import DEFAULT_STATE_DIR, PRIVATE_KEY_NAME


def mint(private_key_file: Path, *, org: str, scopes: list[str], sub: str, ttl: int) -> str:
    """A signed token for `org` with `scopes`."""
    private_pem = private_key_file.read_text(encoding="utf-8")
    return mint_token(private_pem, sub=sub, org=org, scopes=scopes, ttl_seconds=ttl)


def parse_scopes(text: str) -> list[str]:
    """`a,b, c` -> ["a", "b", "c"]."""
    return [scope.strip() for scope in text.split(",") if scope.strip()]


def token(
    org: Annotated[str, typer.Option(help="Tenant (org id) the token acts for.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated scopes.")] = "",
    sub: Annotated[str, typer.Option(help="Subject (who acts).")] = "dev-user",
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.", min=1)] = 3600,
    key_file: Annotated[
        Path | None,
        typer.Option(
            envvar="PLUGBOARD_JWT_PRIVATE_KEY_FILE",
            help=f"Private key PEM (default: {DEFAULT_STATE_DIR / PRIVATE_KEY_NAME}).",
        ),
    ] = None,
) -> None:
    """Print a dev JWT (EdDSA) carrying ORG and SCOPES."""
    path = key_file or DEFAULT_STATE_DIR / PRIVATE_KEY_NAME
    if not path.is_file():
        raise typer.BadParameter(
            f"no private key at {path}: run `plugboard dev` once or pass --key-file",
            param_hint="--key-file",
        )
    typer.echo(mint(path, org=org, scopes=parse_scopes(scopes), sub=sub, ttl=ttl))

"""``voltlib member contract add|remove``: a member's Plug & Charge contract (ISO 15118 eMAID),
registered through the running server's API so that the change is audited under the token's name
(docs/car-sharing.md, "Plug & Charge rentals")."""

from __future__ import annotations

import json

import typer

from voltlib.cli.operator import DEFAULT_URL, TokenOpt, UrlOpt, _checked, _client

member_app = typer.Typer(help="Members (through the running server).", no_args_is_help=True)
contract_app = typer.Typer(help="A member's Plug & Charge contracts (eMAIDs).", no_args_is_help=True)
member_app.add_typer(contract_app, name="contract")


@contract_app.command("add")
def contract_add(member_id: str, emaid: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "") -> None:
    """Register the eMAID of the member's contract: a car opens to it at a 2.0.1 station once its
    contract certificate checks out (no badge)."""
    with _client(url, token) as api:
        answer = _checked(api.put(f"/api/v1/members/{member_id}/contracts/{emaid}")).json()
    typer.echo(json.dumps(answer))


@contract_app.command("remove")
def contract_remove(member_id: str, emaid: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "") -> None:
    """Remove the member's contract: it opens nothing any more."""
    with _client(url, token) as api:
        answer = _checked(api.delete(f"/api/v1/members/{member_id}/contracts/{emaid}")).json()
    typer.echo(json.dumps(answer))

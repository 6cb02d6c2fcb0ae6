"""``clinicos cds clients …``: register, list and remove the CDS clients (EHRs) that may call
the CDS Hooks service for an organization.

Kept out of cli.py (already long); uses its settings loader and use-case runner through the
``clinicos.cli`` module at call time, like cli_fhir.py, so tests that patch it patch these too."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clinicos.bootstrap import Container

clients_app = typer.Typer(
    help="CDS Hooks clients: the EHRs allowed to call /cds-services, and their public keys",
    no_args_is_help=True,
)

OrgOption = Annotated[str, typer.Option("--org", help="organization slug")]
IssuerOption = Annotated[str, typer.Option("--issuer", help="the client's JWT iss")]


async def _organization_id(c: Container, slug: str) -> str:
    from clinicos.identity.services.organizations import require_organization_by_slug

    async with c.uow() as uow:
        organization = await require_organization_by_slug(uow, slug)
    return organization.id


@clients_app.command("add")
def clients_add(
    org: OrgOption,
    issuer: IssuerOption,
    jwks_file: Annotated[
        Path, typer.Option("--jwks-file", help="the client's JSON Web Key Set (public keys)")
    ],
) -> None:
    """Register a CDS client: its tokens' issuer and the public keys that sign them."""
    from clinicos import cli as root
    from clinicos.cds.hooks.clients import ClientView, add_client, parse_jwks

    try:
        text = jwks_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise root._fail(f"cannot read JWKS file {jwks_file}: {exc}") from exc

    async def _add(c: Container) -> ClientView:
        jwks = parse_jwks(text)
        return await add_client(
            uows=c.uow,
            organization_id=await _organization_id(c, org),
            issuer=issuer,
            jwks=jwks,
            reserved_issuer=c.settings.identity.jwt_issuer,
        )

    view = root._run_use_case(_add)
    typer.echo(f"registered CDS client {view.issuer} for {org} (keys: {', '.join(view.key_ids)})")


@clients_app.command("list")
def clients_list(org: OrgOption) -> None:
    """List an organization's CDS clients."""
    from clinicos import cli as root
    from clinicos.cds.hooks.clients import ClientView, list_clients

    async def _list(c: Container) -> list[ClientView]:
        return await list_clients(uows=c.uow, organization_id=await _organization_id(c, org))

    views = root._run_use_case(_list)
    if not views:
        typer.echo(f"no CDS clients for {org}")
    for view in views:
        typer.echo(
            f"{view.issuer}  keys: {', '.join(view.key_ids)}  "
            f"registered {view.created_at:%Y-%m-%d %H:%M} UTC  id {view.client_id}"
        )


@clients_app.command("remove")
def clients_remove(org: OrgOption, issuer: IssuerOption) -> None:
    """Unregister a CDS client: its next call is refused."""
    from clinicos import cli as root
    from clinicos.cds.hooks.clients import ClientView, remove_client

    async def _remove(c: Container) -> ClientView:
        return await remove_client(
            uows=c.uow, organization_id=await _organization_id(c, org), issuer=issuer
        )

    view = root._run_use_case(_remove)
    typer.echo(f"removed CDS client {view.issuer} from {org}")

"""Every route declares the permission it needs, or is explicitly public (default deny)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from clinicos.identity.dependencies import AUTHENTICATED, PERMISSION_ATTR, PUBLIC
from clinicos.identity.permissions import Permission
from clinicos.main import create_app
from clinicos.platform.http.ops_routes import PUBLIC_PATHS
from tests.conftest import make_settings

# FastAPI's own documentation routes: public by design, they hold no data.
FRAMEWORK_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def declared(dependant: Dependant) -> list[str]:
    found = []
    for dep in dependant.dependencies:
        marker = getattr(dep.call, PERMISSION_ATTR, None)
        if marker is not None:
            found.append(marker)
        found.extend(declared(dep))
    return found


def all_routes(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """Flatten included routers (FastAPI keeps them nested)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from all_routes(nested.routes)
        else:
            yield route


def test_every_api_route_declares_exactly_one_permission_or_public(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", tmp_path))
    valid = {PUBLIC, AUTHENTICATED} | {p.value for p in Permission}
    problems = []
    checked = 0
    for route in all_routes(app.routes):
        if not isinstance(route, APIRoute):
            path = getattr(route, "path", None)
            assert path in FRAMEWORK_PATHS, f"unexpected non-API route {path}"
            continue
        if route.path in PUBLIC_PATHS:
            continue
        checked += 1
        markers = declared(route.dependant)
        if len(markers) != 1 or markers[0] not in valid:
            problems.append(f"{sorted(route.methods)} {route.path}: {markers}")
    assert checked >= 15, "fewer routes than expected: is the app assembled?"
    assert problems == []


def test_checker_when_route_lacks_declaration_reports_it() -> None:
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/naked")
    async def naked() -> dict[str, str]:
        return {}

    route = router.routes[0]
    assert isinstance(route, APIRoute)
    assert declared(route.dependant) == []

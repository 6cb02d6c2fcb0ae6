"""Work the suite's ~2,000 app start-ups repeat identically, done once per test process.

Nearly every test starts a fresh app (``create_app`` and its lifespan). Two parts of a start-up
depend only on code and files that do not change during a test session, yet cost more than the
rest of it together; ``install()`` makes each happen once per process. Neither changes what a
test observes.

Route builds. FastAPI (0.165) builds the routes of an included router lazily, per app: the first
request an app serves walks the routers in order and, for every route of every router it passes,
analyses the endpoint's signature and builds pydantic validators (``_EffectiveRouteContext.
from_api_route``): 50-100 ms of CPU per app, a third of an API test's CPU time, spent rebuilding
exactly what the previous test's app built from the same route objects. The build is memoised
per (route object, inclusion context), the inclusion context compared field by field except for
the app it was included into (``dependency_overrides_provider``). What differs between the
suite's apps is the container on ``app.state``, which handlers read from the request, so one
build serves every app alike. Never shared: builds for an app with ``dependency_overrides`` (no
test sets any; a shared build would consult the first app's). Should FastAPI's internals change
shape, nothing is patched and every app builds its own routes again (slower, never wrong).

Migration scripts. Every lifespan checks the schema (``schema_state``), and that parses every
Alembic script twice (``head_revisions``, ``known_revisions``): ~15 ms of CPU per start-up. Both
are memoised on the scripts' names and modification times, so adding or editing a migration
during a session is still seen.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable
from typing import Any

from fastapi import routing

import clinicos.platform.db.schema as schema_module

_PATCHED_MARK = "_clinicos_tests_process_cache"


def install() -> None:
    share_route_builds()
    cache_migration_scripts()


def share_route_builds() -> bool:
    """Patch FastAPI for this process; True if patched (now or before)."""
    context_class: Any = getattr(routing, "_EffectiveRouteContext", None)
    build = getattr(context_class, "from_api_route", None)
    if context_class is None or build is None:
        return False
    if getattr(build, _PATCHED_MARK, False):
        return True
    lock = threading.Lock()
    # id(route) -> [(route, inclusion context without its app, built context)]; the route is
    # kept so that its id cannot be reused by another object.
    built: dict[int, list[tuple[Any, Any, Any]]] = {}

    def from_api_route(cls: Any, *, original_route: Any, include_context: Any) -> Any:
        provider = getattr(include_context, "dependency_overrides_provider", None)
        if getattr(provider, "dependency_overrides", None):
            return build(original_route=original_route, include_context=include_context)
        try:
            key = dataclasses.replace(include_context, dependency_overrides_provider=None)
        except (TypeError, ValueError):  # not the dataclass this was written against
            return build(original_route=original_route, include_context=include_context)
        entries = built.setdefault(id(original_route), [])
        for route, seen, context in list(entries):
            if route is original_route and seen == key:
                return context
        context = build(original_route=original_route, include_context=include_context)
        with lock:
            entries.append((original_route, key, context))
        return context

    setattr(from_api_route, _PATCHED_MARK, True)
    context_class.from_api_route = classmethod(from_api_route)
    return True


def _scripts_fingerprint() -> tuple[tuple[str, int], ...]:
    versions = schema_module.migrations_dir() / "versions"
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in versions.glob("*.py")))


def _memoised_on_scripts(compute: Callable[[], Any]) -> Callable[[], Any]:
    @functools.lru_cache(maxsize=4)
    def for_scripts(_fingerprint: tuple[tuple[str, int], ...]) -> Any:
        return compute()

    @functools.wraps(compute)
    def cached() -> Any:
        return for_scripts(_scripts_fingerprint())

    setattr(cached, _PATCHED_MARK, True)
    return cached


def cache_migration_scripts() -> None:
    """Memoise ``head_revisions`` and ``known_revisions`` (what ``schema_state`` calls)."""
    for name in ("head_revisions", "known_revisions"):
        original = getattr(schema_module, name)
        if not getattr(original, _PATCHED_MARK, False):
            setattr(schema_module, name, _memoised_on_scripts(original))

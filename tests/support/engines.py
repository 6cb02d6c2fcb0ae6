"""SQLAlchemy engines reused from one test to the next instead of created for every test.

A new engine costs more than its first connection: on first connect the dialect initialises
itself (server version and settings, type information: several round trips and a good deal of
Python), and every statement is compiled afresh into the new engine's empty compiled cache. The
fixtures that make a container (``container``, the identity harness) and ``owner_engine`` did
that ~2,000 times per session; reusing engines cut the CPU time of API tests by about a quarter.

What a test sees does not change. An engine is lent to one container (or owner-engine fixture)
at a time; a test that builds several at once gets several engines, as before. Each is disposed
at the end of its test, as before, which closes every pooled connection (so no connection, nor
its session settings, nor its event loop, outlives the test); only the engine object with its
dialect state and compiled-statement cache is kept. An engine is taken back only when its pool
is empty after the dispose; one still in use is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

import clinicos.bootstrap as bootstrap
from clinicos.bootstrap import Container, build_container
from clinicos.config import Settings
from clinicos.platform.db.engine import create_owner_engine

_Key = tuple[str, str, bool]
_idle: dict[_Key, list[AsyncEngine]] = {}
_keys: dict[int, _Key] = {}  # id(engine) -> its key, while lent out


def _key(settings: Settings, *, owner: bool) -> _Key:
    # Everything create_engine_for_url reads: the URL and the database settings.
    return (settings.effective_database_url, settings.database.model_dump_json(), owner)


def _lend(
    settings: Settings, *, owner: bool, create: Callable[[Settings], AsyncEngine]
) -> AsyncEngine:
    key = _key(settings, owner=owner)
    idle = _idle.get(key)
    engine = idle.pop() if idle else create(settings)
    _keys[id(engine)] = key
    return engine


def give_back(engine: AsyncEngine) -> None:
    """Call after ``await engine.dispose()``: the engine may serve a later test."""
    key = _keys.pop(id(engine), None)
    if key is None:
        return
    pool = engine.sync_engine.pool
    counts = [getattr(pool, name, None) for name in ("checkedout", "checkedin")]
    if None in counts or any(count() for count in counts if count is not None):
        return  # used again after its dispose (or a pool we cannot tell): not reusable
    _idle.setdefault(key, []).append(engine)


def build_container_reusing_engine(settings: Settings, **kwargs: Any) -> Container:
    """``build_container(settings, **kwargs)`` on a lent engine; ``give_back(container.engine)``
    once the container is disposed."""
    original = bootstrap.create_engine_from_settings

    def lent(s: Settings) -> AsyncEngine:
        return _lend(s, owner=False, create=original)

    bootstrap.create_engine_from_settings = lent
    try:
        return build_container(settings, **kwargs)
    finally:
        bootstrap.create_engine_from_settings = original


def lend_owner_engine(settings: Settings) -> AsyncEngine:
    """``create_owner_engine(settings)``, lent; ``give_back`` it once disposed."""
    return _lend(settings, owner=True, create=create_owner_engine)

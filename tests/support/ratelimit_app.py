"""A bare FastAPI app with rate-limited routes, for the rate-limit tests (in-process and uvicorn).

Serve with ``uvicorn --factory tests.support.ratelimit_app:create``; settings come from the
environment (``CLINICOS_REDIS_URL``, ``CLINICOS_RATE_LIMIT__READ``, ...) and the Redis key
prefix from ``CLINICOS_TEST_RATE_LIMIT_PREFIX``, so concurrent test runs never share budgets.
No database: the limiter is the only thing on the stand-in container.

``tests.support.ratelimit_app:create_shared_and_local`` serves the same app twice in one
process: under ``/shared`` with the limiter the settings describe (Redis), under ``/local``
with the in-memory limiter a process without ``CLINICOS_REDIS_URL`` would have; so one pair of
processes shows both behaviours.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Request, Response
from starlette.routing import Mount

from clinicos.config import load_settings
from clinicos.platform.http.problems import install_problem_handlers
from clinicos.platform.http.ratelimit import client_ip, enforce, rate_limit
from clinicos.platform.observability.logging import configure_logging
from clinicos.platform.ratelimit import DEFAULT_KEY_PREFIX, RateLimiter, build_rate_limiter

PREFIX_ENV = "CLINICOS_TEST_RATE_LIMIT_PREFIX"
TEST_USER_HEADER = "X-Test-User"


@dataclass
class StandInContainer:
    rate_limiter: RateLimiter


@dataclass(frozen=True)
class StandInActor:
    user_id: str


async def stand_in_auth(request: Request) -> None:
    """Plays the identity context's auth dependency: puts an actor on ``request.state``."""
    user_id = request.headers.get(TEST_USER_HEADER)
    if user_id:
        request.state.actor = StandInActor(user_id)


async def health() -> dict[str, str]:
    return {"status": "ok"}


async def limited() -> dict[str, bool]:
    return {"ok": True}


async def sign_in(request: Request, response: Response, account: str) -> dict[str, bool]:
    # Sign-in's own key: the account together with the address it is tried from.
    await enforce(request, response, "auth", f"{account}|{client_ip(request)}")
    return {"ok": True}


def build_app(limiter: RateLimiter) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await limiter.aclose()

    app = FastAPI(lifespan=lifespan)
    app.state.container = StandInContainer(rate_limiter=limiter)
    install_problem_handlers(app)
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route(
        "/limited",
        limited,
        methods=["GET"],
        dependencies=[Depends(stand_in_auth), Depends(rate_limit("read"))],
    )
    app.add_api_route("/sign-in", sign_in, methods=["POST"])
    return app


def create() -> FastAPI:
    settings = load_settings(_env_file=None)
    configure_logging(settings.observability.log_level, json=settings.observability.log_json)
    prefix = os.environ.get(PREFIX_ENV, DEFAULT_KEY_PREFIX)
    return build_app(build_rate_limiter(settings, key_prefix=prefix))


def create_shared_and_local() -> FastAPI:
    settings = load_settings(_env_file=None)
    configure_logging(settings.observability.log_level, json=settings.observability.log_json)
    prefix = os.environ.get(PREFIX_ENV, DEFAULT_KEY_PREFIX)
    shared = build_rate_limiter(settings, key_prefix=prefix)  # connects on first use
    local = build_rate_limiter(settings.model_copy(update={"redis_url": None}), key_prefix=prefix)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Mounted apps' own lifespans do not run: close both limiters here.
        try:
            yield
        finally:
            await shared.aclose()
            await local.aclose()

    app = FastAPI(
        lifespan=lifespan,
        routes=[Mount("/shared", app=build_app(shared)), Mount("/local", app=build_app(local))],
    )
    app.add_api_route("/health", health, methods=["GET"])
    return app

"""Single-use secrets presented twice at the same moment: a refresh token, a TOTP code, a reset
token. At most one of two concurrent uses may succeed.

The interleaving is made deterministic: each use case's unit of work pauses right after its
first read until the other has read too, or 1 s has passed (the row lock taken on that read
makes the second wait for the first to commit, so the rendezvous must not wait forever).
PostgreSQL only: on SQLite every transaction takes the write lock when it begins (BEGIN
IMMEDIATE), so the two cannot overlap at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Self

import pytest

from clinicos.bootstrap import Container
from clinicos.identity.services import account_tokens, sessions
from clinicos.platform.db.uow import SqlUnitOfWork
from tests.support import identity_fixtures
from tests.support.identity_fixtures import (
    NEW_PASSWORD,
    PASSWORD,
    Harness,
    StartApp,
    body_text,
    enroll_mfa,
    login,
    read_mails,
    seed_clinic,
    sign_in,
    token_in,
)

# Fixtures shared by identity's tests (tests/support/identity_fixtures.py).
start_app = identity_fixtures.start_app


class Rendezvous:
    """Both parties wait here until the other arrives (or the timeout passes)."""

    def __init__(self, parties: int = 2, timeout: float = 1.0) -> None:
        self.parties = parties
        self.timeout = timeout
        self.arrived = 0
        self.all_here = asyncio.Event()

    async def arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.all_here.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_here.wait(), self.timeout)


class PausingUnitOfWork(SqlUnitOfWork):
    """A real unit of work whose session pauses once, after the first call of ``method``."""

    def __init__(self, container: Container, rendezvous: Rendezvous, method: str) -> None:
        super().__init__(container.sessions, clock=container.clock)
        self._rendezvous = rendezvous
        self._method = method

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        session = self.session
        original = getattr(session, self._method)

        async def first_call_then_pause(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs)
            setattr(session, self._method, original)  # only the first read pauses
            await self._rendezvous.arrive()
            return result

        setattr(session, self._method, first_call_then_pause)
        return self


def pausing_uows(container: Container, method: str) -> Callable[[], SqlUnitOfWork]:
    rendezvous = Rendezvous()
    return lambda: PausingUnitOfWork(container, rendezvous, method)


async def outcomes(*attempts: Awaitable[object]) -> list[str]:
    results = await asyncio.gather(*attempts, return_exceptions=True)
    return sorted("ok" if not isinstance(r, BaseException) else type(r).__name__ for r in results)


@pytest.fixture
async def app(start_app: StartApp) -> Harness:
    harness = await start_app(rate_limit={"auth": "100/minute"})
    if harness.settings.is_sqlite:
        pytest.skip("SQLite serializes writers (BEGIN IMMEDIATE); the uses cannot overlap")
    return harness


async def test_refresh_same_token_twice_concurrently_only_one_succeeds_and_revokes_the_family(
    app: Harness,
) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    tokens = await sign_in(app.client, user)
    uows = pausing_uows(app.container, "scalar")  # refresh() first reads the token row

    def use() -> Awaitable[sessions.TokenPair]:
        return sessions.refresh(
            uows=uows,
            runtime=app.container.identity,
            refresh_token=tokens["refresh_token"],
            request_id=None,
        )

    # Act
    results = await asyncio.gather(use(), use(), return_exceptions=True)
    # Assert
    assert sorted(type(r).__name__ for r in results) == ["InvalidToken", "TokenPair"]
    [winner] = [r for r in results if isinstance(r, sessions.TokenPair)]
    # The loser presented a used token: reuse, so the winner's session is revoked too.
    after = await app.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": winner.refresh_token}
    )
    assert after.status_code == 401


async def test_mfa_step_same_code_twice_concurrently_only_one_succeeds(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    secret, _ = await enroll_mfa(app, (await sign_in(app.client, user))["access_token"])
    app.clock.advance(timedelta(seconds=30))
    challenges = [(await login(app.client, user.email, PASSWORD)).json() for _ in range(2)]
    code = app.totp(secret)
    uows = pausing_uows(app.container, "get")  # complete_mfa() first loads the user

    def use(challenge: dict[str, Any]) -> Awaitable[sessions.TokenPair]:
        return sessions.complete_mfa(
            uows=uows,
            runtime=app.container.identity,
            mfa_token=challenge["mfa_token"],
            code=code,
            request_id=None,
        )

    # Act
    result = await outcomes(*(use(c) for c in challenges))
    # Assert
    assert result == ["InvalidMfaCode", "ok"]


async def test_password_reset_same_token_twice_concurrently_only_one_succeeds(
    app: Harness,
) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    await app.client.post("/api/v1/auth/password-reset/request", json={"email": user.email})
    token = token_in(body_text(read_mails(app.mail_dir)[-1]))
    uows = pausing_uows(app.container, "scalar")  # _consume() first reads the token row

    def use(password: str) -> Awaitable[None]:
        return account_tokens.reset_password(
            uows=uows,
            runtime=app.container.identity,
            token=token,
            new_password=password,
            request_id=None,
        )

    # Act
    result = await outcomes(use(NEW_PASSWORD), use("Another-Fresh-Secret-31"))
    # Assert
    assert result == ["InvalidToken", "ok"]

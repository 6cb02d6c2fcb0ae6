"""The unit-of-work contract every use case runs in: one transaction, one commit, events kept."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from clinicos.kernel.events import DomainEvent


class UnitOfWork(Protocol):
    """A use case opens one, records its events, and commits exactly once.

    Leaving the ``async with`` block without ``commit()`` rolls everything back, including the
    recorded events; a second ``commit()`` is a programming error.
    """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def record(self, event: DomainEvent) -> None: ...

    async def commit(self) -> None: ...

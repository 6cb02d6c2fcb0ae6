"""Routes mounted only in tests, to drive the error and observability machinery end to end."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import text

from clinicos.kernel.errors import Conflict, NotFound

router = APIRouter(prefix="/_probe")


class DoseIn(BaseModel):
    drug: str = Field(min_length=1, max_length=50)
    dose_mg: float = Field(gt=0, le=1000)


@router.post("/doses")
async def create_dose(body: DoseIn) -> dict[str, object]:
    return {"drug": body.drug, "dose_mg": body.dose_mg}


@router.get("/items/{item_id}")
async def get_item(item_id: str) -> dict[str, str]:
    if item_id == "missing":
        raise NotFound("item not found")
    if item_id == "taken":
        raise Conflict("item already exists", code="item_exists")
    return {"id": item_id}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("internal detail: patient Maria Quispe, table secret_stuff")


@router.get("/db")
async def db_query(request: Request) -> dict[str, int]:
    async with request.app.state.container.engine.connect() as conn:
        value = (await conn.execute(text("SELECT 1"))).scalar_one()
    return {"value": int(value)}

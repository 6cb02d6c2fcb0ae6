"""console: the server-rendered web console (Jinja2 templates, plain HTML forms, no script
build step, charts drawn as SVG on the server) over the same services as the API.

Nothing imports console but the composition root (main.py), which calls ``install``."""

from __future__ import annotations

from fastapi import FastAPI

from clinicos.console import (
    admin_routes,
    audit_routes,
    auth_routes,
    kpi_routes,
    order_routes,
    patient_routes,
)
from clinicos.console.web import install_handlers


def install(app: FastAPI) -> None:
    install_handlers(app)
    for module in (
        auth_routes,
        patient_routes,
        order_routes,
        kpi_routes,
        audit_routes,
        admin_routes,
    ):
        app.include_router(module.router)


__all__ = ["install"]

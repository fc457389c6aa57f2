"""The admin HTTP listener: `/healthz` for load balancers, `/metrics` for Prometheus."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mailserver.metrics import VERSION, Metrics
from storage.db import Database


def build_admin_app(db: Database, metrics: Metrics) -> Starlette:
    async def healthz(request: Request) -> Response:
        try:
            async with db.session() as s:
                await s.execute(text("SELECT 1"))
        except Exception as exc:  # the database is what makes us healthy; say why not
            metrics.http_requests.labels("/healthz", "503").inc()
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return JSONResponse({"status": "unavailable", "database": first}, status_code=503)
        metrics.http_requests.labels("/healthz", "200").inc()
        return JSONResponse({"status": "ok", "database": db.dialect, "version": VERSION})

    async def prometheus(request: Request) -> Response:
        await metrics.refresh(db)
        metrics.http_requests.labels("/metrics", "200").inc()
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("not found: try /healthz or /metrics\n", status_code=404)

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/metrics", prometheus)],
        exception_handlers={404: not_found},
    )

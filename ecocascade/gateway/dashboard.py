"""The savings dashboard: ``GET /dashboard`` (a self-contained page: inline CSS, SVG and JS, no
external assets), ``GET /dashboard/data?window=1h`` (its JSON), and ``GET /`` → ``/dashboard``.

The page polls the JSON every 5 s. The numbers come from a :class:`~ecocascade.gateway.stats.
StatsSink` (Redis buckets when the gateway runs on Redis, so any replica shows all of them) and,
for budgets, from :class:`~ecocascade.gateway.access.KeyAdmission`. When API keys are configured
the dashboard shows every tenant's spend, so it needs a key with ``admin: true`` (as a bearer
token, or ``?key=`` in the page's URL, which the page forwards).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request  # FastAPI reads the handlers' annotations at run time
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ecocascade.gateway.access import KeyAdmission
from ecocascade.gateway.apikeys import bearer_token
from ecocascade.gateway.errors import GatewayError

if TYPE_CHECKING:
    from ecocascade.gateway.admission import Admission
    from ecocascade.gateway.stats import StatsSink

__all__ = ["WINDOWS", "add_dashboard", "dashboard_html"]

WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86_400, "7d": 7 * 86_400}


@functools.cache
def dashboard_html() -> str:
    return resources.files("ecocascade.gateway").joinpath("dashboard.html").read_text("utf-8")


def _check_admin(admission: Admission, request: Request) -> None:
    if not isinstance(admission, KeyAdmission) or admission.keys.open:
        return
    key = bearer_token(request.headers.get("authorization")) or request.query_params.get("key")
    policy = admission.authenticate(key)  # 401 for a missing or unknown key
    if policy is not None and not policy.admin:
        raise GatewayError(
            403,
            f"key {policy.id!r} may not see the dashboard (it shows every key's spend): "
            "give a key admin: true",
            code="dashboard_not_allowed",
        )


def add_dashboard(
    app: FastAPI, stats: StatsSink, admission: Admission, *, top_tier: int = 0
) -> None:
    """Add the dashboard's routes to ``app``; ``top_tier`` is the index of the cascades' last
    tier (the page says how many answers did not need it)."""

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"dashboard{query}", status_code=307)

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard(request: Request) -> Response:
        _check_admin(admission, request)
        return HTMLResponse(
            dashboard_html(),
            headers={
                "Cache-Control": "no-store",
                # nothing external may load: the page is self-contained by design
                "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; "
                "script-src 'unsafe-inline'; img-src 'self' data:",
            },
        )

    @app.get("/dashboard/data", include_in_schema=False)
    async def data(request: Request, window: str = "1h") -> Response:
        _check_admin(admission, request)
        if window not in WINDOWS:
            raise GatewayError(
                400, f"window must be one of {', '.join(WINDOWS)}, got {window!r}", param="window"
            )
        snapshot: dict[str, Any] = await stats.snapshot(WINDOWS[window])
        snapshot["top_tier"] = top_tier
        snapshot["budgets"] = (
            await admission.budgets() if isinstance(admission, KeyAdmission) else []
        )
        return Response(
            json.dumps(snapshot, separators=(",", ":")),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

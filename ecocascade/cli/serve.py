"""``ecocascade serve``: run the OpenAI-compatible gateway (uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["serve"]


def serve(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Gateway config (YAML): cascades and settings.")
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port (0: any free port).")] = 8080,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, help="Worker processes (each its own state).")
    ] = 1,
    log_level: Annotated[
        str, typer.Option("--log-level", help="Show log events at this level and above (stderr).")
    ] = "warning",
    log_json: Annotated[bool, typer.Option("--log-json", help="Log events as JSON lines.")] = False,
) -> int:
    """Serve cascades as an OpenAI-compatible API (model "cascade/NAME"; others pass through).

    Any app that speaks the OpenAI API gets the cascade by changing its base URL to
    http://HOST:PORT/v1 and its model to cascade/NAME; other model names go through LiteLLM.
    """
    import os

    from ecocascade.cli.logs import configure_logging
    from ecocascade.gateway.config import load_gateway_config

    configure_logging(log_level, json=log_json)
    gateway_config = load_gateway_config(config)  # a bad file: one line, exit 2, nothing started
    for cascade in gateway_config.cascades.values():
        cascade.build()  # the cascades' own checks (unset key variables, missing files) too
    from ecocascade.gateway.defaults import check_deployment

    check_deployment(gateway_config, workers=workers)  # keys, and budgets shared by workers

    import uvicorn

    from ecocascade.gateway.app import CONFIG_ENV, app_from_env, create_app

    options = {
        "host": host,
        "port": port,
        "log_level": "warning" if log_level == "warning" else log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }
    if workers > 1:
        os.environ[CONFIG_ENV] = str(config.resolve())
        # each worker is a fresh process: it configures its logging from these
        os.environ["ECOCASCADE_GATEWAY_LOG"] = f"{log_level}:{'json' if log_json else 'text'}"
        uvicorn.run(
            f"{app_from_env.__module__}:{app_from_env.__name__}",
            factory=True,
            workers=workers,
            **options,  # type: ignore[arg-type]
        )
    else:
        uvicorn.run(create_app(gateway_config), **options)  # type: ignore[arg-type]
    return 0

"""`serve`: the serving app for the project (uvicorn, one worker), as `make serve` starts it."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Serve /predict, /get-online-features, /health, /ready, /metrics and /docs for the project's
    champion (needs a trained champion and a materialised online store)."""
    import uvicorn

    uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, workers=1)

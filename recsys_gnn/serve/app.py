"""HTTP API over an :class:`~recsys_gnn.serve.artifact.Artifact` (FastAPI).

Endpoints: ``GET /health``, ``GET /recommend?user=&k=&exclude_seen=``, ``POST /recommend`` with
``{"items": [...], "k": 10}`` (new user from items), ``GET /similar?item=&k=``. Errors come back as
``{"error": "..."}``: 404 for unknown ids, 422 for bad parameters (k out of range, empty history, wrong types).
The response builders below are shared with the ``recommend`` CLI.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from recsys_gnn.data.errors import UnknownIdError
from recsys_gnn.serve.artifact import Artifact

log = logging.getLogger(__name__)


def health_response(artifact: Artifact) -> dict[str, Any]:
    """What the artifact serves: sizes, quantisation, index."""
    return {
        "status": "ok",
        "n_users": artifact.n_users,
        "n_items": artifact.n_items,
        "dim": artifact.dim,
        "quantization": artifact.quantization,
        "index": artifact.index,
    }


def recommend_response(
    artifact: Artifact, user: str, k: int = 10, exclude_seen: bool = True
) -> dict[str, Any]:
    """Top-``k`` items for a known user."""
    items = artifact.recommend(user, k=k, exclude_seen=exclude_seen)
    return {"user": user, "k": k, "exclude_seen": exclude_seen, "items": items}


def cold_start_response(
    artifact: Artifact, history: list[str], k: int = 10, exclude_given: bool = True
) -> dict[str, Any]:
    """Top-``k`` items for a new user given by the items they liked."""
    items = artifact.recommend_for_items(history, k=k, exclude_given=exclude_given)
    return {"history": history, "k": k, "exclude_given": exclude_given, "items": items}


def similar_response(artifact: Artifact, item: str, k: int = 10) -> dict[str, Any]:
    """The ``k`` items most similar to ``item``."""
    return {"item": item, "k": k, "items": artifact.similar(item, k=k)}


class ColdStartRequest(BaseModel):
    """Body of ``POST /recommend``."""

    model_config = ConfigDict(extra="forbid")

    items: list[str | int]
    k: int = 10
    exclude_given: bool = True


def _validation_message(err: RequestValidationError) -> str:
    """One readable line per problem: where (query/body field), what is wrong, and the value sent."""
    parts = []
    for e in err.errors():
        if e.get("type") == "json_invalid":
            reason = (e.get("ctx") or {}).get("error", "")
            parts.append(f"request body is not valid JSON{f' ({reason})' if reason else ''}")
            continue
        loc = [str(x) for x in e.get("loc", ())]
        where = f"{loc[0]} field {'.'.join(loc[1:])!r}" if len(loc) > 1 else ".".join(loc) or "request"
        value = e.get("input")
        got = "" if value is None or isinstance(value, dict | list) else f" (got {value!r})"
        parts.append(f"{where}: {e.get('msg', 'invalid')}{got}")
    return "; ".join(parts) or "invalid request"


def create_app(artifact: Artifact) -> FastAPI:
    """A FastAPI app answering from ``artifact``."""
    app = FastAPI(
        title="recsys_gnn", description="Top-K recommendations from an exported recsys_gnn artifact"
    )
    app.state.artifact = artifact

    @app.exception_handler(UnknownIdError)
    async def _unknown(_: Request, err: UnknownIdError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"error": str(err)})

    @app.exception_handler(ValueError)
    async def _bad_value(_: Request, err: ValueError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": str(err)})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": _validation_message(err)})

    @app.get("/health")
    def health() -> dict[str, Any]:
        return health_response(artifact)

    @app.get("/recommend")
    def recommend(
        user: str = Query(..., description="original user id"),
        k: int = Query(10, description="number of items"),
        exclude_seen: bool = Query(True, description="skip the user's known items"),
    ) -> dict[str, Any]:
        return recommend_response(artifact, user, k=k, exclude_seen=exclude_seen)

    @app.post("/recommend")
    def recommend_new_user(body: ColdStartRequest) -> dict[str, Any]:
        history = [str(i) for i in body.items]
        return cold_start_response(artifact, history, k=body.k, exclude_given=body.exclude_given)

    @app.get("/similar")
    def similar(
        item: str = Query(..., description="original item id"),
        k: int = Query(10, description="number of items"),
    ) -> dict[str, Any]:
        return similar_response(artifact, item, k=k)

    return app

"""HTTP API over an :class:`~recsys_gnn.serve.artifact.Artifact` (FastAPI).

Endpoints: ``GET /health``, ``GET /recommend?user=&k=&exclude_seen=``, ``POST /recommend`` with
``{"items": [...], "k": 10}`` (new user from items), ``GET /similar?item=&k=``. Errors come back as
``{"error": "..."}``: 404 for unknown ids, 413 for a body over the size limit, 414 for a URL over the length
limit, 422 for bad parameters (k out of range, empty or too long history, ids too long, wrong types: ids are
strings or integers, never booleans or floats; ``k`` is an integer). Messages quote at most a short prefix of
what was sent. The limits are a :class:`ServeLimits`, read from ``RECSYS_GNN_SERVE_*`` variables by
:func:`app_from_env`, the app factory for several uvicorn workers.
The response builders below are shared with the ``recommend`` CLI.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    StrictBool,
    StrictInt,
    WithJsonSchema,
)
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recsys_gnn.data.errors import UnknownIdError
from recsys_gnn.serve.artifact import Artifact, short_repr

#: Environment variables of :func:`app_from_env` (the worker processes' configuration).
ARTIFACT_ENV = "RECSYS_GNN_ARTIFACT"
INDEX_ENV = "RECSYS_GNN_SERVE_INDEX"
THREADS_ENV = "RECSYS_GNN_SERVE_THREADS"
VERIFY_ENV = "RECSYS_GNN_SERVE_VERIFY"
MAX_ERRORS_SHOWN = 3  # validation problems listed in one 422 message


@dataclass(frozen=True)
class ServeLimits:
    """Request limits of the app; each is also a ``--max-...`` flag and a ``RECSYS_GNN_SERVE_MAX_...`` variable.

    Args:
        max_body_bytes: request body size (413 above it, before the body is parsed).
        max_url_bytes: path + query string length (414 above it). uvicorn's HTTP parser (h11) refuses a
            request line + headers over ``--h11-max-incomplete-event-size`` (16 KiB by default) before the app
            sees it; ``python -m recsys_gnn.serve`` raises that to stay above this limit.
        max_items: item ids in a ``POST /recommend`` history (422 above it).
        max_id_chars: characters of one user or item id (422 above it).
        max_k: largest ``k`` (also never more than the artifact's number of items).
    """

    max_body_bytes: int = 64 * 1024
    max_url_bytes: int = 8 * 1024
    max_items: int = 1000
    max_id_chars: int = 256
    max_k: int = 1000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{f.name} must be a positive integer; got {value!r}")

    @staticmethod
    def env_name(field_name: str) -> str:
        """``max_body_bytes`` -> ``RECSYS_GNN_SERVE_MAX_BODY_BYTES``."""
        return "RECSYS_GNN_SERVE_" + field_name.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServeLimits:
        """Limits from ``RECSYS_GNN_SERVE_MAX_*`` variables; the defaults for those not set."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(cls.env_name(f.name))
            if raw is None or raw.strip() == "":
                continue
            try:
                values[f.name] = int(raw)
            except ValueError:
                raise ValueError(f"{cls.env_name(f.name)} must be an integer; got {raw!r}") from None
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The ``RECSYS_GNN_SERVE_MAX_*`` variables that :meth:`from_env` reads back as these limits."""
        return {self.env_name(k): str(v) for k, v in asdict(self).items()}


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


def _strict_id(value: Any) -> str | int:
    # JSON true and 1.0 would otherwise be read as the id "1" (bool is an int in Python)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"ids must be strings or integers, not {type(value).__name__}")
    return value


def _query_int(value: Any) -> Any:
    # pydantic's lax mode would read "1.0", "1_000" and " 3" as integers; a query k is plain digits
    if isinstance(value, str) and not re.fullmatch(r"[+-]?[0-9]{1,18}", value):
        raise ValueError("must be an integer written in digits")
    return value


QueryInt = Annotated[int, BeforeValidator(_query_int)]

ItemId = Annotated[
    str | int,
    PlainValidator(_strict_id),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
]


class ColdStartRequest(BaseModel):
    """Body of ``POST /recommend``: ids are strings or integers, ``k`` an integer (no booleans, no floats)."""

    model_config = ConfigDict(extra="forbid")

    items: list[ItemId]
    k: StrictInt = 10
    exclude_given: StrictBool = True


def _validation_message(err: RequestValidationError) -> str:
    """One readable line per problem (the first few): where (query/body field), what is wrong, and a short
    prefix of the value sent, never the whole input."""
    parts = []
    errors = err.errors()
    for e in errors[:MAX_ERRORS_SHOWN]:
        if e.get("type") == "json_invalid":
            reason = str((e.get("ctx") or {}).get("error", ""))[:80]
            parts.append(f"request body is not valid JSON{f' ({reason})' if reason else ''}")
            continue
        loc = [str(x)[:40] for x in e.get("loc", ())]
        where = f"{loc[0]} field {'.'.join(loc[1:])!r}" if len(loc) > 1 else ".".join(loc) or "request"
        value = e.get("input")
        got = "" if value is None or isinstance(value, dict | list) else f" (got {short_repr(value)})"
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")[:200]
        parts.append(f"{where}: {msg}{got}")
    if len(errors) > MAX_ERRORS_SHOWN:
        parts.append(f"and {len(errors) - MAX_ERRORS_SHOWN} more problems")
    return "; ".join(parts) or "invalid request"


def _error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


class RequestLimitsMiddleware:
    """414 for a path + query string over ``max_url_bytes``; 413 for a body over ``max_body_bytes``.

    A declared ``Content-Length`` over the limit is refused before any of the body is read; a body sent
    without one (chunked) is counted as it arrives and refused once it passes the limit, so at most
    ``max_body_bytes`` (plus one chunk) is ever held.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_url_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_url_bytes = max_url_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("raw_path") or scope.get("path", "").encode()
        if len(path) + len(scope.get("query_string", b"")) > self.max_url_bytes:
            response = _error_response(414, f"request URL longer than {self.max_url_bytes} bytes")
            await response(scope, receive, send)
            return
        declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if declared is not None:
            if not declared.strip().isdigit():
                await _error_response(400, "invalid Content-Length header")(scope, receive, send)
                return
            if int(declared) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # FastAPI re-raises an HTTPException met while reading the body; the handler answers it
                    raise HTTPException(413, self._too_large_message())
            return message

        await self.app(scope, limited_receive, send)

    def _too_large_message(self) -> str:
        return f"request body larger than {self.max_body_bytes} bytes"

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _error_response(413, self._too_large_message())(scope, receive, send)


def create_app(artifact: Artifact, limits: ServeLimits | None = None) -> FastAPI:
    """A FastAPI app answering from ``artifact`` within ``limits`` (default :class:`ServeLimits`)."""
    limits = limits or ServeLimits()
    app = FastAPI(
        title="recsys_gnn", description="Top-K recommendations from an exported recsys_gnn artifact"
    )
    app.state.artifact = artifact
    app.state.limits = limits
    app.add_middleware(
        RequestLimitsMiddleware, max_body_bytes=limits.max_body_bytes, max_url_bytes=limits.max_url_bytes
    )
    k_max = min(limits.max_k, artifact.n_items)

    def check_k(k: int) -> int:
        if not 1 <= k <= k_max:
            bound = "the number of items" if k_max == artifact.n_items else "the server's max_k"
            raise ValueError(f"k must be between 1 and {bound} ({k_max}); got {short_repr(k)}")
        return k

    def check_id(value: str | int, what: str) -> str:
        text = str(value)
        if len(text) > limits.max_id_chars:
            raise ValueError(f"{what} id longer than {limits.max_id_chars} characters: {short_repr(text)}")
        return text

    @app.exception_handler(UnknownIdError)
    async def _unknown(_: Request, err: UnknownIdError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"error": str(err)})

    @app.exception_handler(ValueError)
    async def _bad_value(_: Request, err: ValueError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": str(err)})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": _validation_message(err)})

    @app.exception_handler(HTTPException)
    async def _http(_: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=err.status_code, content={"error": str(err.detail)[:200]}, headers=err.headers
        )

    @app.get("/health")
    def health() -> dict[str, Any]:
        return health_response(artifact)

    @app.get("/recommend")
    def recommend(
        user: str = Query(..., description="original user id"),
        k: Annotated[QueryInt, Query(description="number of items")] = 10,
        exclude_seen: bool = Query(True, description="skip the user's known items"),
    ) -> dict[str, Any]:
        user = check_id(user, "user")
        return recommend_response(artifact, user, k=check_k(k), exclude_seen=exclude_seen)

    @app.post("/recommend")
    def recommend_new_user(body: ColdStartRequest) -> dict[str, Any]:
        if len(body.items) > limits.max_items:
            raise ValueError(f"at most {limits.max_items} item ids per request; got {len(body.items)}")
        history = [check_id(i, "item") for i in body.items]
        return cold_start_response(artifact, history, k=check_k(body.k), exclude_given=body.exclude_given)

    @app.get("/similar")
    def similar(
        item: str = Query(..., description="original item id"),
        k: Annotated[QueryInt, Query(description="number of items")] = 10,
    ) -> dict[str, Any]:
        return similar_response(artifact, check_id(item, "item"), k=check_k(k))

    return app


def app_from_env(artifact: str | Path | None = None, limits: ServeLimits | None = None) -> FastAPI:
    """App factory (``uvicorn --factory recsys_gnn.serve.app:app_from_env``): each worker process calls it and
    loads its own read-only copy of the artifact.

    Args:
        artifact: the artifact folder; default ``$RECSYS_GNN_ARTIFACT``.
        limits: default :meth:`ServeLimits.from_env`.

    Also reads ``$RECSYS_GNN_SERVE_INDEX`` (``brute``/``faiss``), ``$RECSYS_GNN_SERVE_THREADS`` (torch threads;
    0 or unset keeps torch's default) and ``$RECSYS_GNN_SERVE_VERIFY`` (``0`` skips the checksums, e.g. when
    the parent process checked them already).
    """
    path = artifact if artifact is not None else os.environ.get(ARTIFACT_ENV)
    if not path:
        raise ValueError(f"no artifact: pass one or set ${ARTIFACT_ENV} to an artifact folder")
    threads = int(os.environ.get(THREADS_ENV) or 0)
    if threads:
        import torch

        torch.set_num_threads(threads)
    art = Artifact.load(
        path,
        index=os.environ.get(INDEX_ENV) or "brute",
        verify=os.environ.get(VERIFY_ENV, "1") != "0",
    )
    return create_app(art, limits or ServeLimits.from_env())

"""The HTTP API: REST routes under ``/api``, the OpenAI-compatible ``/v1`` endpoint
(``qa.serve.openai``) beside them.

Every error is JSON in OpenAI's shape, ``{"error": {"message", "type", "code"}}``, so the
``openai`` client and plain HTTP clients read the same one-line message. Handlers are plain
``def``: FastAPI runs them in its thread pool, and the shared ``QAService`` limits how many
questions are answered at once across the API and the web chat.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa.errors import Busy, NotFound, QAError, TooLarge, Unsupported
from qa.serve.openai import openai_router
from qa.serve.service import QAService
from qa.settings import Settings

# -- errors --------------------------------------------------------------------------------

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request_error",
    500: "server_error",
    503: "service_unavailable",
}


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    kind = _STATUS_TYPES.get(status, "error")
    body = {"error": {"message": message, "type": kind, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def _status_of(exc: QAError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Unsupported):
        return 415
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, Busy):
        return 503
    return 422  # bad input a client can correct: empty question, bad history, ...


def _validation_message(exc: RequestValidationError) -> str:
    """FastAPI's list of problems as one line: the first problem and where it is."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON"
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QAError)
    async def _qa_error(request: Request, exc: QAError) -> JSONResponse:
        status = _status_of(exc)
        return error_response(status, str(exc), {"Retry-After": "5"} if status == 503 else None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # the last resort: a bug of ours, never a traceback to the client
        return error_response(500, f"internal error ({type(exc).__name__})")


# How far past its limit a rejected body is still read, and thrown away, before the 413 goes
# out. A body beyond this is answered at once and the connection closed under it: a client that
# reads only after sending all of its body (urllib) may then see a reset instead of the 413,
# but nobody gets to make the server read an endless body.
DRAIN_BYTES = 64 * 1024 * 1024


async def _drain(receive: Receive, budget: int) -> bool:
    """Read and discard the rest of the request body, at most ``budget`` more bytes (each chunk
    is dropped as it comes, nothing is kept). True if the body came to its end: the connection
    is clean; False if it was cut off or the client went away."""
    while True:
        got = await receive()
        if got["type"] != "http.request":
            return False
        if not got.get("more_body", False):
            return True
        budget -= len(got.get("body", b""))
        if budget < 0:
            return False


class BodyLimit:
    """ASGI middleware: 413 for a body over its limit, by Content-Length or as it streams in.

    Hand-written because FastAPI's own ``max_body_size`` answers in plain text, not the JSON
    error every other status gets here. Uploads get their own, larger limit; paths outside
    ``/api`` and ``/v1`` (the web chat) keep Gradio's limits.

    The rest of a rejected body is read and thrown away (up to ``DRAIN_BYTES`` past the limit)
    before the 413 is sent. Answering at once and closing, as this used to, closes the socket
    with the client's data still unread in it: the kernel then sends a reset, and a client
    still sending (``urllib``, which reads only once it has sent everything) gets
    ``ConnectionResetError`` and never the 413, which the reset throws away. Where the body is
    not read to its end, the 413 says ``Connection: close``: that stream can't carry another
    request.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.json_limit = settings.max_body_bytes
        self.upload_limit = settings.max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(("/api/", "/v1/")):
            await self.app(scope, receive, send)
            return
        upload = path.rstrip("/") == "/api/articles" and scope.get("method") == "POST"
        limit = self.upload_limit if upload else self.json_limit
        cap = limit + DRAIN_BYTES
        message = f"{'an upload' if upload else 'a request body'} may be at most {limit} bytes"

        async def reject(clean: bool) -> None:
            headers = None if clean else {"Connection": "close"}
            await error_response(413, message, headers)(scope, receive, send)

        sent_headers = dict(scope.get("headers") or [])
        declared = sent_headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            if sent_headers.get(b"expect", b"").lower() == b"100-continue":
                # the client waits for "100 Continue" before it sends the body (curl does for
                # large ones): the 413 instead, and it sends nothing. Reading would invite it all
                await reject(clean=False)
            elif int(declared) > cap:
                await reject(clean=False)  # too long to drain: answered at once, see DRAIN_BYTES
            else:
                await reject(await _drain(receive, cap))
            return
        seen, started, too_large = 0, False, False

        async def counting_receive() -> Message:
            nonlocal seen, too_large
            got = await receive()
            if got["type"] == "http.request":
                seen += len(got.get("body", b""))
                if seen > limit:
                    too_large = True
                    raise TooLarge(message)
            return got

        async def tracking_send(out: Message) -> None:
            nonlocal started
            if too_large:
                return  # the app's own answer to a cut-off body (FastAPI says 400) is dropped
            started = started or out["type"] == "http.response.start"
            await send(out)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await reject(await _drain(receive, cap - seen))


def require_key(settings: Settings):
    """A dependency: with ``QA_API_KEY`` set, ``Authorization: Bearer <key>`` or 401."""
    expected = settings.api_key.get_secret_value().encode() if settings.api_key else None

    def check(request: Request) -> None:
        if expected is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken does not tell how much of a guessed key was right
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise StarletteHTTPException(
                401,
                "missing or wrong API key (Authorization: Bearer <key>)",
                {"WWW-Authenticate": "Bearer"},
            )

    return check


# -- request bodies ------------------------------------------------------------------------


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="the question")
    history: list[Turn] | None = Field(None, description="earlier turns, oldest first")
    top_k: int | None = Field(None, ge=1, le=50, description="passages to answer from")


# -- routes --------------------------------------------------------------------------------


def build_api(service: QAService) -> FastAPI:
    """The FastAPI app with ``/api`` and ``/v1``; the server mounts the web chat beside it."""
    settings = service.settings
    app = FastAPI(
        title="corpus QA",
        version=service.health()["version"],
        description="Cited answers from a corpus of news articles. See the README.",
    )
    app.add_middleware(BodyLimit, settings=settings)
    if settings.cors_origins:  # off unless configured: browsers elsewhere can't call us
        from fastapi.middleware.cors import CORSMiddleware

        origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    install_error_handlers(app)
    auth = [Depends(require_key(settings))]

    rest = APIRouter(prefix="/api", tags=["corpus QA"])

    @rest.get("/health")
    def health() -> dict[str, Any]:
        """Whether the index is ready, with article and passage counts and the version."""
        return service.health()

    @rest.post("/ask", dependencies=auth)
    def ask(body: AskRequest) -> dict[str, Any]:
        """The answer with its citations (the same JSON as `qa ask --json`)."""
        history = [t.model_dump() for t in body.history or []]
        return service.ask(body.question, history, body.top_k)

    @rest.get("/articles", dependencies=auth)
    def list_articles() -> dict[str, Any]:
        """Every indexed article with its passage count."""
        return service.articles()

    @rest.post("/articles", dependencies=auth)
    def upload_articles(
        files: Annotated[list[UploadFile], File(description=".txt .md .html .jsonl files")],
    ) -> dict[str, Any]:
        """Add or update articles; they are answerable as soon as this returns."""
        sent = []
        for f in files:
            data = f.file.read(settings.max_upload_bytes + 1)
            if len(data) > settings.max_upload_bytes:
                raise TooLarge(f"{f.filename!r} is over {settings.max_upload_bytes} bytes")
            sent.append((f.filename or "", data))
        return service.add_files(sent).as_dict()

    @rest.delete("/articles/{article_id}", dependencies=auth)
    def delete_article(article_id: str) -> dict[str, Any]:
        """Remove an article from the index and its file from the corpus folder."""
        return service.delete_article(article_id)

    v1 = openai_router(service, auth)

    app.include_router(rest)
    app.include_router(v1)

    # the web chat is mounted at "/" after these routes, so without these an unknown /api or
    # /v1 path (or a wrong method on a known one) would fall through to it, not a JSON error
    known_paths = {r.path for r in (*rest.routes, *v1.routes)}

    def unknown(rest: str, request: Request) -> JSONResponse:
        path = request.url.path
        if path in known_paths:
            return error_response(405, f"{request.method} is not allowed on {path}")
        return error_response(404, f"no such endpoint: {request.method} {path}")

    for prefix in ("/api", "/v1"):
        app.add_api_route(
            f"{prefix}/{{rest:path}}",
            unknown,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
            include_in_schema=False,
        )
    return app

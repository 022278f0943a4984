"""The web server: the REST API, the OpenAI-compatible endpoint and the web chat in one
FastAPI app on one ``QAService`` (one index and one embedder in memory).

``python app.py`` and ``qa serve`` both end in ``serve``.
"""

from __future__ import annotations

import os

# offline by default: no usage statistics or update checks from Gradio (set before import)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr
import uvicorn
from fastapi import FastAPI

from qa.errors import QAError
from qa.serve.api import build_api
from qa.serve.memory import limit_malloc_arenas
from qa.serve.service import QAService, prepare_index
from qa.settings import Settings, load_settings


def create_app(settings: Settings, service: QAService | None = None) -> FastAPI:
    """The whole app: ``/api``, ``/v1``, ``/docs`` and the Gradio chat at ``/``."""
    from qa.serve.chat import UI_CSS, build_ui

    service = service or QAService.start(settings)
    app = build_api(service)
    auth = None
    if settings.ui_user and settings.ui_password:
        auth = (settings.ui_user, settings.ui_password.get_secret_value())
    return gr.mount_gradio_app(
        app,
        build_ui(service),
        path="/",
        auth=auth,
        max_file_size=settings.max_upload_bytes,
        css=UI_CSS,
        ssr_mode=False,
        footer_links=["api"],
    )


def app_factory() -> FastAPI:
    """The app from the environment's settings: what each worker process of
    ``qa serve --workers N`` builds for itself."""
    limit_malloc_arenas()
    return create_app(load_settings())


def serve(settings: Settings, workers: int = 1) -> None:
    """Index the corpus if the index is empty, then serve until interrupted. With several
    workers (processes), each has its own engine on the shared Chroma server."""
    where = f"http://{settings.host}:{settings.port}/"
    limit_malloc_arenas()
    if workers == 1:
        app = create_app(settings)
        print(f"corpus QA on {where}  (API docs at /docs)", flush=True)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
        return
    if not settings.chroma_url:
        raise QAError(
            "--workers above 1 needs a Chroma server (QA_CHROMA_URL): the embedded store "
            "belongs to one process"
        )
    prepare_index(settings)  # once, here, rather than in every worker at the same time
    print(f"corpus QA on {where}  ({workers} workers, store {settings.chroma_url})", flush=True)
    uvicorn.run(
        "qa.serve.server:app_factory",
        factory=True,
        workers=workers,
        host=settings.host,
        port=settings.port,
        log_level="warning",
    )

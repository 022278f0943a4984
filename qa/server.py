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

from qa.api import build_api
from qa.service import QAService
from qa.settings import Settings


def create_app(settings: Settings, service: QAService | None = None) -> FastAPI:
    """The whole app: ``/api``, ``/v1``, ``/docs`` and the Gradio chat at ``/``."""
    from qa.ui import UI_CSS, build_ui

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


def serve(settings: Settings) -> None:
    """Index the corpus if the index is empty, then serve until interrupted."""
    app = create_app(settings)
    print(f"corpus QA on http://{settings.host}:{settings.port}/  (API docs at /docs)", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")

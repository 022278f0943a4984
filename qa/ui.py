"""Placeholder web chat (replaced by the real UI)."""

from __future__ import annotations

import gradio as gr

from qa.service import QAService

UI_CSS = ""


def build_ui(service: QAService) -> gr.Blocks:
    with gr.Blocks(title="corpus QA") as ui:
        gr.Markdown("corpus QA")
    return ui

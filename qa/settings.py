"""One typed settings object: environment variables ``QA_*``, overridden by CLI flags.

Why pydantic-settings: it gives typed parsing and validation of the environment for free,
so a bad ``QA_TOP_K=abc`` is a clear error, not a crash deep in retrieval.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from qa.errors import QAError


class Settings(BaseSettings):
    """Everything configurable. Paths are relative to the working directory."""

    model_config = SettingsConfigDict(env_prefix="QA_", extra="ignore", frozen=True)

    corpus_dir: Path = Field(Path("corpus/articles"), description="where `qa index` reads")
    index_dir: Path = Field(Path("index"), description="the persisted Chroma store")
    chroma_url: str | None = Field(None, description="a Chroma server instead of index_dir")
    collection_prefix: str = Field("qa", description="prefix of the Chroma collection names")
    top_k: int = Field(5, ge=1, le=50, description="passages listed with an answer")
    read_passages: int = Field(
        10, ge=1, le=50, description="passages the reader reads (at least top_k)"
    )
    candidates: int = Field(30, ge=1, le=500, description="hits per retriever before fusion")
    rrf_k: int = Field(60, ge=1, description="reciprocal-rank-fusion constant")
    chunk_tokens: int = Field(128, ge=32, le=256, description="target passage length (tokens)")
    chunk_overlap_sentences: int = Field(1, ge=0, le=4, description="sentences shared by passages")
    embed_batch_size: int = Field(32, ge=1, le=512, description="passages per model call")
    index_batch: int = Field(
        1024, ge=1, le=10000, description="passages embedded together (sorted by length)"
    )
    index_commit_passages: int = Field(
        4096, ge=1, description="passages between commits (work redone after a crash)"
    )
    threads: int = Field(
        0, ge=0, description="embedder threads and passages read at once; 0 = all cores"
    )
    max_question_chars: int = Field(4000, ge=1)

    # the server (`qa serve`, app.py)
    host: str = Field("127.0.0.1", description="address the server binds (loopback by default)")
    port: int = Field(7860, ge=0, le=65535, description="port of the server")
    api_key: SecretStr | None = Field(None, description="Bearer key for /api/* and /v1/*")
    ui_user: str | None = Field(None, description="user name for the web chat (Gradio auth)")
    ui_password: SecretStr | None = Field(None, description="password for the web chat")
    lock_wait_s: float = Field(
        120.0, ge=0, le=86400, description="how long a writer waits for another to finish"
    )
    max_concurrent: int = Field(4, ge=1, le=256, description="questions answered at once")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="largest JSON request body")
    max_upload_bytes: int = Field(20_971_520, ge=1024, description="largest upload request")
    model_name: str = Field("corpus-qa", description="model id on the OpenAI-compatible API")
    cors_origins: str | None = Field(
        None, description="comma-separated origins allowed by CORS (off when unset)"
    )

    # the answerer: extractive (no LLM) unless an OpenAI-compatible endpoint is configured
    answerer: Literal["auto", "extractive", "llm"] = Field(
        "auto", description="auto = llm when QA_LLM_BASE_URL is set, else extractive"
    )
    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint (…/v1)")
    llm_api_key: SecretStr | None = Field(None, description="its key (else OPENAI_API_KEY)")
    llm_model: str = Field("gpt-4o-mini", description="model name at that endpoint")
    llm_timeout: float = Field(30.0, gt=0, le=600, description="seconds for the LLM's part")
    llm_max_retries: int = Field(2, ge=0, le=10, description="retries of a 429 / 5xx")
    llm_max_tokens: int = Field(512, ge=16, le=32768, description="longest generated answer")
    llm_history_tokens: int = Field(1000, ge=0, description="chat history kept for condensing")

    @field_validator(
        "chroma_url",
        "api_key",
        "ui_user",
        "ui_password",
        "llm_base_url",
        "llm_api_key",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, v: object) -> object:
        return v or None

    @model_validator(mode="after")
    def _ui_auth_pair(self) -> Settings:
        if bool(self.ui_user) != bool(self.ui_password):
            raise ValueError("QA_UI_USER and QA_UI_PASSWORD must be set together")
        return self

    @model_validator(mode="after")
    def _llm_configured(self) -> Settings:
        if self.llm_api_key is None and os.environ.get("OPENAI_API_KEY"):
            object.__setattr__(self, "llm_api_key", SecretStr(os.environ["OPENAI_API_KEY"]))
        if self.answerer == "llm" and not (self.llm_base_url or self.llm_api_key):
            raise ValueError(
                "QA_ANSWERER=llm needs QA_LLM_BASE_URL (or OPENAI_API_KEY for OpenAI itself)"
            )
        return self

    @property
    def use_llm(self) -> bool:
        return self.answerer == "llm" or (self.answerer == "auto" and bool(self.llm_base_url))

    @property
    def onnx_threads(self) -> int:
        return self.threads or os.cpu_count() or 1


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment with ``overrides`` (CLI flags) on top; None means unset."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        if not field:
            reason = first["msg"].removeprefix("Value error, ")
            raise QAError(f"invalid settings: {reason}") from None
        raise QAError(f"invalid setting {field} (QA_{field.upper()}): {first['msg']}") from None

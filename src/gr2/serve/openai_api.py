"""`/openai/v1/chat/completions` and `/openai/v1/models`: raw prompting of the served model, in the OpenAI
format (the traces stage's `openai` teacher can point at it). Not constrained; no streaming.

KServe registers its own OpenAI routes only with vllm installed, so these are plain FastAPI routes."""

from __future__ import annotations

import time
import uuid
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gr2.serve.backends import DeadlineExceeded
from gr2.serve.metrics import REQUEST_LATENCY

ROUTE_PREFIX = "/openai/v1"
# Sampling below this temperature is greedy in all but name, and the sampler divides float32 logits by it:
# 1e-299 is 0 in float32 and made the route answer 503. vLLM, the remote backend, draws the same line (1e-5).
GREEDY_BELOW_TEMPERATURE = 1e-5


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    # OpenAI clients send fields this server has no use for (e.g. top_p, user); they are ignored
    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(
        default=1.0, ge=0.0, le=2.0, description=f"0 is greedy, and so is anything below {GREEDY_BELOW_TEMPERATURE}."
    )
    seed: int | None = None
    n: Literal[1] = 1
    stream: Literal[False] = False


def sampling_temperature(requested: float) -> float:
    return 0.0 if requested < GREEDY_BELOW_TEMPERATURE else requested


def openai_error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind, "code": status}})


def completion_body(name: str, answer) -> dict:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        },
    }


def openai_router(model) -> APIRouter:
    """Routes for the GR2Model `model` (its reranker must be loaded before the first request)."""
    router = APIRouter(prefix=ROUTE_PREFIX, tags=["OpenAI"])

    async def models() -> dict:
        return {"object": "list", "data": [{"id": model.name, "object": "model", "owned_by": "gr2"}]}

    async def chat_completions(request: ChatRequest):
        if request.model != model.name:
            return openai_error(
                404, f"model {request.model!r} is not served here; this server has {model.name!r}", "not_found_error"
            )
        cap = model.config.chat_max_tokens
        max_tokens = min(request.max_completion_tokens or request.max_tokens or cap, cap)
        messages = [message.model_dump() for message in request.messages]
        with REQUEST_LATENCY.labels("chat").time():
            try:
                answer = await model.reranker.chat(
                    messages, max_tokens, sampling_temperature(request.temperature), request.seed
                )
            except DeadlineExceeded as error:
                return openai_error(504, f"generation timed out: {error}", "timeout_error")
            except Exception as error:  # the generator's failure, reported as such rather than as a bare 500
                return openai_error(503, f"generator failed: {type(error).__name__}: {error}", "server_error")
        return completion_body(model.name, answer)

    router.add_api_route("/models", models, methods=["GET"])
    router.add_api_route("/chat/completions", chat_completions, methods=["POST"])
    return router

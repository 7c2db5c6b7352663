"""`gr2 serve`: the KServe model server with the GR2 predictor, the OpenAI chat route and a body-size limit.

    gr2 serve --model RUN_OR_DIR [--port N] [--name NAME] [--host ADDR] [--config FILE] [--set KEY=VALUE]

Routes: /v1/models/NAME:predict, /v2/models/NAME/infer (and KServe's health and metadata routes),
/openai/v1/chat/completions, /openai/v1/models, /metrics. KServe's own arguments for transformer containers
(--model_name, --http_port, --predictor_host) are accepted, so the server runs unchanged as a KServe
transformer in front of a vLLM predictor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path

import yaml
from pydantic import ValidationError

from gr2.serve.config import ServeConfig


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes is answered 413 before the app parses it, whether
    it declares its length or is sent in chunks."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def refuse(self, send, size: int) -> None:
        body = json.dumps(
            {"error": f"request body of {size}+ bytes is over the limit of {self.limit} bytes (max_body_bytes)"}
        ).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            return await self.refuse(send, int(declared))
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self.refuse(send, size)
            more = message.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        return await self.app(scope, replay, send)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gr2 serve", description="Serve a GR2 model bundle (KServe v1/v2, OpenAI)")
    parser.add_argument("--model", help="bundle directory, run directory or remote URI (gs://...)")
    parser.add_argument("--port", "--http_port", type=int, help="HTTP port (default 8080)")
    parser.add_argument("--name", "--model_name", help="model name in the URLs (default gr2)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--backend", choices=["local", "remote"], help="local transformers or a remote generator")
    parser.add_argument("--remote-url", help="remote generator's OpenAI base URL, ending in /v1")
    parser.add_argument(
        "--predictor_host", help="KServe transformer mode: the predictor's host; sets --remote-url to its /openai/v1"
    )
    parser.add_argument("--config", type=Path, help="YAML or JSON file with ServeConfig fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any ServeConfig field")
    return parser


def parse_assignment(assignment: str) -> tuple[str, object]:
    key, separator, raw = assignment.partition("=")
    if not separator or not key:
        raise SystemExit(f"gr2 serve: --set {assignment!r}: expected KEY=VALUE")
    return key.strip(), yaml.safe_load(raw)


def serve_config(argv: list[str] | None = None) -> ServeConfig:
    args = build_parser().parse_args(argv)
    fields: dict = (yaml.safe_load(args.config.read_text()) or {}) if args.config else {}
    fields.update(dict(parse_assignment(assignment) for assignment in args.set))
    if args.predictor_host:
        fields.setdefault("remote_url", f"http://{args.predictor_host}/openai/v1")
    flags = {
        "model": args.model,
        "port": args.port,
        "name": args.name,
        "host": args.host,
        "backend": args.backend,
        "remote_url": args.remote_url,
    }
    fields.update({key: value for key, value in flags.items() if value is not None})
    try:
        return ServeConfig(**fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in error.errors())
        raise SystemExit(f"gr2 serve: invalid configuration: {problems}") from error


def build_rest_server(config: ServeConfig, model):
    """The REST server of a loaded GR2Model: KServe's app with the OpenAI routes and the body limit."""
    from gr2.serve.kserve_import import FASTAPI_APP_IMPORT_STRING, RESTServer, app, kserve
    from gr2.serve.openai_api import openai_router

    model_server = kserve.ModelServer(http_port=config.port, enable_grpc=False, enable_latency_logging=False)
    model_server.register_model(model)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.include_router(openai_router(model))
    rest = RESTServer(
        FASTAPI_APP_IMPORT_STRING, model_server.dataplane, model_server.model_repository_extension, config.port
    )
    rest.config.host = config.host  # KServe always listens on 0.0.0.0; locally we stay on 127.0.0.1
    return rest


def main(argv: list[str] | None = None) -> int:
    config = serve_config(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)
    from gr2.serve.predictor import GR2Model

    model = GR2Model(config)
    model.load()
    asyncio.run(build_rest_server(config, model).start())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

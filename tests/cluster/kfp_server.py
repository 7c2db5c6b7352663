"""Just enough of the KFP v2beta1 REST API for kfp.Client: pipelines, versions, experiments, runs,
recurring runs. It keeps what it is sent and records every request, on 127.0.0.1 only."""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

API = "/apis/v2beta1"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: dict = field(default_factory=dict)  # JSON body, or the uploaded file as {"uploadfile": text}


@dataclass
class FakeKfp:
    requests: list[Request] = field(default_factory=list)
    pipelines: list[dict] = field(default_factory=list)
    versions: list[dict] = field(default_factory=list)
    experiments: list[dict] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)
    recurring_runs: list[dict] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids)}"

    def calls(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    def handle(self, request: Request) -> tuple[int, dict]:
        route = (request.method, request.path.removeprefix(API))
        name = request.query.get("name")
        if route == ("GET", "/healthz"):
            return 200, {"multi_user": False}
        if route == ("GET", "/pipelines"):
            return 200, {"pipelines": matching(self.pipelines, request.query)}
        if route == ("POST", "/pipelines/upload"):
            pipeline = {"pipeline_id": self.new_id("pipeline"), "display_name": name}
            self.pipelines.append(pipeline)
            self.versions.append({**pipeline, "pipeline_version_id": self.new_id("version"), "display_name": name})
            return 200, pipeline
        if route == ("POST", "/pipelines/upload_version"):
            version = {
                "pipeline_id": request.query["pipelineid"],
                "pipeline_version_id": self.new_id("version"),
                "display_name": name,
            }
            self.versions.append(version)
            return 200, version
        if request.method == "GET" and route[1].endswith("/versions"):
            pipeline_id = route[1].split("/")[2]
            mine = [v for v in self.versions if v["pipeline_id"] == pipeline_id]
            return 200, {"pipeline_versions": matching(mine, request.query)}
        if route == ("GET", "/experiments"):
            return 200, {"experiments": matching(self.experiments, request.query)}
        if route == ("POST", "/experiments"):
            experiment = {**request.body, "experiment_id": self.new_id("experiment")}
            self.experiments.append(experiment)
            return 200, experiment
        if route == ("POST", "/runs"):
            run = {**request.body, "run_id": self.new_id("run")}
            self.runs.append(run)
            return 200, run
        if route == ("POST", "/recurringruns"):
            recurring = {**request.body, "recurring_run_id": self.new_id("recurring")}
            self.recurring_runs.append(recurring)
            return 200, recurring
        return 404, {"error": f"not implemented: {request.method} {request.path}"}


def matching(items: list[dict], query: dict[str, str]) -> list[dict]:
    """The items a kfp filter (`display_name` EQUALS) selects; all of them without a filter."""
    if "filter" not in query:
        return items
    predicates = json.loads(query["filter"])["predicates"]
    wanted = {p["key"]: p["stringValue"] for p in predicates}
    return [item for item in items if all(item.get(key) == value for key, value in wanted.items())]


def parse_body(content_type: str, raw: bytes) -> dict:
    if not raw:
        return {}
    if content_type.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        return {
            part.get_param("name", header="content-disposition"): part.get_content() for part in message.iter_parts()
        }
    return json.loads(raw)


def handler_for(fake: FakeKfp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def respond(self) -> None:
            url = urlparse(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = Request(
                self.command,
                url.path,
                {k: v[0] for k, v in parse_qs(url.query).items()},
                self.headers.get("Authorization"),
                parse_body(self.headers.get("Content-Type", ""), raw),
            )
            fake.requests.append(request)
            status, payload = fake.handle(request)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = respond

        def log_message(self, *args) -> None:
            pass

    return Handler


@contextmanager
def serving_fake_kfp() -> Iterator[tuple[str, FakeKfp]]:
    fake = FakeKfp()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fake
    finally:
        server.shutdown()
        server.server_close()

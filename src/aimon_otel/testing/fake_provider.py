"""A fake LLM provider on a loopback port: the real SDKs talk to it over real HTTP.

    with FakeProvider() as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test")

It speaks each API's JSON and SSE formats (see ``openai_wire``), answers error statuses on
request (header ``x-fake-scenario``), and keeps every request it got for assertions.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from aimon_otel.testing.anthropic_wire import AnthropicWire
from aimon_otel.testing.bedrock_wire import BedrockWire
from aimon_otel.testing.cohere_wire import CohereWire
from aimon_otel.testing.gemini_wire import GeminiWire
from aimon_otel.testing.ollama_wire import OllamaWire
from aimon_otel.testing.openai_wire import OpenAIWire, WireResponse, error_response

REPLAY_HEADER = "x-fake-replay"


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 overflows when 64 threads connect at once, and the
    # kernel then drops connections; the tests hammer this server on purpose.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client dropping its keep-alive connection is normal, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeProvider:
    """A threaded HTTP server answering like OpenAI (and, later, other providers)."""

    def __init__(self, *, reject_stream_options: bool = False, host: str = "127.0.0.1") -> None:
        self.openai = OpenAIWire(reject_stream_options=reject_stream_options)
        self.anthropic = AnthropicWire()
        self.bedrock = BedrockWire(self.anthropic)
        self.gemini = GeminiWire()
        self.ollama = OllamaWire()
        self.cohere = CohereWire()
        self.requests: list[ReceivedRequest] = []
        self.replays: dict[str, Callable[[], WireResponse]] = {}
        """Answers by name for requests with the ``x-fake-replay`` header (recorded real responses)."""
        self._lock = threading.Lock()
        self._server = _QuietServer((host, 0), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    @property
    def gemini_base_url(self) -> str:
        """For ``genai.Client(http_options=HttpOptions(base_url=...))``, Gemini API and Vertex alike."""
        return self.base_url

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    def start(self) -> FakeProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def answer(self, method: str, path: str, headers: dict[str, str], body: dict[str, Any]) -> WireResponse:
        with self._lock:
            self.requests.append(ReceivedRequest(method, path, headers, body))
        replay = self.replays.get(headers.get(REPLAY_HEADER, ""))
        if replay is not None:
            return replay()
        response = (
            self.openai.handle(path, headers, body)
            or self.bedrock.handle(path, headers, body)
            or self.anthropic.handle(path, headers, body)
            or self.gemini.handle(path, headers, body)
            or self.ollama.handle(path, headers, body)
            or self.cohere.handle(path, headers, body)
        )
        if response is None:
            return error_response(404, f"no fake route for {method} {path}", "not_found")
        return response


def _handler_for(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            content_type = self.headers.get("content-type", "")
            if content_type.startswith("multipart/form-data"):
                body = _form_fields(content_type, raw)
            else:
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._send(provider.answer("POST", self.path, headers, body))

        def _send(self, response: WireResponse) -> None:
            self.send_response(response.status)
            self.send_header("content-type", response.content_type)
            self.send_header("x-request-id", "req_fake")
            for name, value in response.headers.items():
                self.send_header(name, value)
            if response.events is None:
                body = response.body or b""
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            try:
                for frame in response.events:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    return Handler


def _form_fields(content_type: str, raw: bytes) -> dict[str, Any]:
    """The fields of a multipart form (an image edit): text as text, files by their field name."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        if part.get_filename() is not None or name.startswith("image"):
            fields[name] = "<file>"
            continue
        payload = part.get_payload(decode=True)
        fields[name] = payload.decode(errors="replace") if isinstance(payload, bytes) else ""
    return fields

"""Per-call overhead of an instrumentation on the real openai SDK, against an in-process transport.

No network: the SDK's HTTP client gets a MockTransport answering with the fake provider's wire
format, so the time measured is SDK + instrumentation only. Bare and instrumented runs are
interleaved in rounds within one process, and median per-call times are compared as a ratio
(machines are noisy; ratios measured in one run are what we trust). Spans go through a
BatchSpanProcessor to an exporter that drops them; metrics to an in-memory reader.

    .venv/bin/python bench/overhead.py [--variant aimon] [--calls 300] [--rounds 7] [--json]

``bench/peers.py`` runs this file in each peer's own virtualenv (``--variant openllmetry`` ...).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import statistics
import sys
import time
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anthropic
import openai
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

try:  # openai 3.x and anthropic 2.x use the httpx2 fork; older releases use httpx
    import httpx2 as httpx_module
except ImportError:  # pragma: no cover - depends on the installed SDK
    import httpx as httpx_module  # type: ignore[no-redef]


def _load_wires() -> tuple[Any, Any]:
    """The fake provider's wire formats. Peers' virtualenvs lack aimon-otel, so there the two
    modules are loaded from the source tree under stub packages (stdlib only; no __init__ runs)."""
    if importlib.util.find_spec("aimon_otel") is None:
        src = Path(__file__).resolve().parents[1] / "src" / "aimon_otel"
        for name, path in (("aimon_otel", src), ("aimon_otel.testing", src / "testing")):
            stub = types.ModuleType(name)
            stub.__path__ = [str(path)]
            sys.modules[name] = stub
    return (
        importlib.import_module("aimon_otel.testing.openai_wire"),
        importlib.import_module("aimon_otel.testing.anthropic_wire"),
    )


wire, anthropic_wire = _load_wires()

MESSAGES = [{"role": "user", "content": "hi"}]


class DroppingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class _Bytes:
    """A sync byte stream for an httpx Response body."""

    def __init__(self, frames: Iterator[bytes]) -> None:
        self.frames = frames

    def __iter__(self) -> Iterator[bytes]:
        return self.frames


def in_process_http_client(answers: Any, module: Any = None) -> Any:
    """An httpx client whose transport answers from a wire object, with no socket (``module``: httpx or the
    httpx2 fork, whichever the SDK is built on; the openai SDK's by default)."""
    http = module or httpx_module
    return http.Client(transport=in_process_transport(answers, http))


def in_process_transport(answers: Any, http: Any) -> Any:
    """An httpx transport answering from a wire object."""

    def handle(request: Any) -> Any:
        headers = {k.lower(): v for k, v in request.headers.items()}
        answer = answers.handle(request.url.path, headers, json.loads(request.content or b"{}"))
        assert answer is not None
        content: Any = _Bytes(answer.events) if answer.events is not None else answer.body
        return http.Response(answer.status, headers={"content-type": answer.content_type}, content=content)

    return http.MockTransport(handle)


class _EveryWire:
    """All of the fake provider's wire formats, answering by path (the server itself is not started)."""

    def __init__(self) -> None:
        from aimon_otel.testing import FakeProvider

        self.fake = FakeProvider()

    def handle(self, path: str, headers: dict[str, str], body: Any) -> Any:
        return self.fake.answer("POST", path, headers, body)


def _other_sdk_workloads(toggle: Toggle | None = None, only: str | None = None) -> dict[str, Callable[[], Any]]:
    """Groq, Mistral, Ollama, Cohere and LiteLLM on in-process transports, where they are installed."""
    found: dict[str, Callable[[], Any]] = {}

    def wanted(name: str) -> bool:
        return only is None or only == name

    if importlib.util.find_spec("aimon_otel") is None or importlib.util.find_spec("httpx") is None:
        return found  # peers' virtualenvs
    import httpx

    every = _EveryWire()
    chat = [{"role": "user", "content": "hi"}]
    if wanted("groq chat") and importlib.util.find_spec("groq"):
        import groq

        groq_client = groq.Groq(api_key="gsk-bench", base_url="http://bench.local",
                                http_client=in_process_http_client(every, httpx), max_retries=0)  # fmt: skip
        found["groq chat"] = lambda: groq_client.chat.completions.create(model="llama-3.3-70b-versatile", messages=chat)
    if wanted("mistral chat") and importlib.util.find_spec("mistralai"):
        try:
            from mistralai.client import Mistral
        except ImportError:
            from mistralai import Mistral  # type: ignore[attr-defined,no-redef]
        mistral = Mistral(api_key="bench", server_url="http://bench.local/mistral",
                          client=in_process_http_client(every, httpx))  # fmt: skip
        found["mistral chat"] = lambda: mistral.chat.complete(model="mistral-small-latest", messages=chat)
    if wanted("ollama chat") and importlib.util.find_spec("ollama"):
        import ollama

        local = ollama.Client(host="http://bench.local", transport=in_process_transport(every, httpx))
        found["ollama chat"] = lambda: local.chat(model="llama3.2", messages=chat)
    if wanted("cohere chat") and importlib.util.find_spec("cohere"):
        import cohere

        # cohere's client binds its methods when made: a client is made again after each on() / off(), so
        # the one measured was made under the instrumentation in force (a warm-up call makes it).
        made: dict[str, Any] = {}

        def command_chat() -> Any:
            generation = toggle.generation if toggle is not None else 0
            if made.get("generation") != generation:
                made["client"] = cohere.ClientV2(api_key="co-bench", base_url="http://bench.local",
                                                 httpx_client=in_process_http_client(every, httpx))  # fmt: skip
                made["generation"] = generation
            return made["client"].chat(model="command-r-plus", messages=chat)

        found["cohere chat"] = command_chat
    if wanted("litellm completion (openai)") and importlib.util.find_spec("litellm"):
        import os

        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        routed = openai.OpenAI(base_url="http://bench.local/v1", api_key="sk-bench",
                               http_client=in_process_http_client(wire.OpenAIWire()), max_retries=0)  # fmt: skip
        found["litellm completion (openai)"] = lambda: litellm.completion(
            model="openai/gpt-4o-mini", messages=chat, client=routed, api_key="sk-bench"
        )
    return found


class _RawBody:
    """What botocore reads a response from (urllib3's response, in the parts botocore uses)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, amt: int | None = None) -> bytes:
        return self._data.read(amt)

    def stream(self, amt: int = 1024, decode_content: bool = True) -> Iterator[bytes]:
        while chunk := self._data.read(amt):
            yield chunk

    def close(self) -> None:
        pass


def in_process_boto3_client(service: str, answer: Callable[[Any], tuple[int, dict[str, str], bytes]]) -> Any:
    """A real boto3 client (signing, serialising, parsing, event-stream decoding) whose HTTP send is answered
    in process through botocore's ``before-send`` event, with no socket."""
    import boto3
    from botocore.awsrequest import AWSResponse

    client = boto3.client(
        service, region_name="us-east-1", endpoint_url="http://bench.local",
        aws_access_key_id="AKIABENCH", aws_secret_access_key="bench-secret",
    )  # fmt: skip

    def send(request: Any, **_: Any) -> Any:
        status, headers, body = answer(request)
        return AWSResponse(request.url, status, headers, _RawBody(body))

    client.meta.events.register(f"before-send.{service}.*", send)
    return client


def _bedrock_answer(request: Any) -> tuple[int, dict[str, str], bytes]:
    from urllib.parse import urlsplit

    bedrock_wire = importlib.import_module("aimon_otel.testing.bedrock_wire")
    body = json.loads(request.body) if request.body else {}
    answer = bedrock_wire.BedrockWire(anthropic_wire.AnthropicWire()).handle(urlsplit(request.url).path, {}, body)
    data = answer.body if answer.events is None else b"".join(answer.events)
    return answer.status, {"content-type": answer.content_type, **answer.headers}, data


def _s3_answer(request: Any) -> tuple[int, dict[str, str], bytes]:
    body = b'<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult><Buckets/></ListAllMyBucketsResult>'
    return 200, {"content-type": "application/xml"}, body


def workloads(toggle: Toggle | None = None, only: str | None = None) -> dict[str, Callable[[], Any]]:
    """Every workload, or ``only`` the one named (its SDK alone imported: under callgrind, importing
    LiteLLM and botocore's models for a workload that does not use them takes minutes)."""

    def wanted(*names: str) -> bool:
        return only is None or only in names

    client = openai.OpenAI(
        base_url="http://bench.local/v1",
        api_key="sk-bench",
        http_client=in_process_http_client(wire.OpenAIWire()),
        max_retries=0,
    )
    claude = anthropic.Anthropic(
        base_url="http://bench.local",
        api_key="sk-ant-bench",
        http_client=in_process_http_client(anthropic_wire.AnthropicWire()),
        max_retries=0,
    )
    found: dict[str, Callable[[], Any]] = {
        "openai chat": lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
        "openai stream, 100 chunks": lambda: sum(
            1
            for _ in client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers={wire.CHUNKS_HEADER: "100"}
            )
        ),
        "anthropic message": lambda: claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES),
    }
    gemini = _gemini_client() if wanted("gemini generate") else None
    if gemini is not None:
        found["gemini generate"] = lambda: gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")
    aws = wanted("bedrock converse", "s3 list_buckets (not an LLM call)")
    if aws and toggle is not None and toggle.variant == "aimon" and importlib.util.find_spec("boto3"):
        toggle.on()  # a bedrock-runtime client is wrapped when made under instrument(), then on every on()
        bedrock = in_process_boto3_client("bedrock-runtime", _bedrock_answer)
        toggle.off()
        converse_messages = [{"role": "user", "content": [{"text": "hi"}]}]
        found["bedrock converse"] = lambda: bedrock.converse(
            modelId="us.anthropic.claude-haiku-4-5-20251001-v1:0", messages=converse_messages
        )
        s3 = in_process_boto3_client("s3", _s3_answer)
        found["s3 list_buckets (not an LLM call)"] = lambda: s3.list_buckets()
    if toggle is None or toggle.variant == "aimon":
        found.update(_other_sdk_workloads(toggle, only))
    return found


def _gemini_client() -> Any:
    """google-genai on the in-process transport, where it is installed and takes an httpx client."""
    try:
        from google import genai
        from google.genai import types as genai_types

        gemini_wire = importlib.import_module("aimon_otel.testing.gemini_wire")
        options = genai_types.HttpOptions(
            base_url="http://bench.local", httpx_client=in_process_http_client(gemini_wire.GeminiWire())
        )
        return genai.Client(api_key="AIza-bench", http_options=options)
    except Exception:  # peers' virtualenvs, older google-genai
        return None


def unknown_model_call() -> Callable[[str], Any]:
    """A chat call naming a model of the caller's choice (for models no price list knows)."""
    client = openai.OpenAI(
        base_url="http://bench.local/v1",
        api_key="sk-bench",
        http_client=in_process_http_client(wire.OpenAIWire()),
        max_retries=0,
    )
    return lambda model: client.chat.completions.create(model=model, messages=MESSAGES)


class Toggle:
    """Turns one variant's instrumentors (OpenAI and, where it has one, Anthropic) on and off."""

    def __init__(self, variant: str, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        self.variant = variant
        self.kwargs: dict[str, Any] = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
        self.instrumentors: list[Any] = []
        self.covers_anthropic = True
        if variant == "aimon":
            from aimon_otel import AimonInstrumentor

            self.instrumentors = [AimonInstrumentor()]
        elif variant == "otel-openai-v2":
            from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

            self.instrumentors = [OpenAIInstrumentor()]
            self.covers_anthropic = False  # no official Anthropic instrumentation is published
        elif variant == "openllmetry":
            from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryInstrumentor

            self.instrumentors = [OpenLLMetryInstrumentor(), AnthropicInstrumentor()]
        elif variant == "openlit":
            self.instrumentors, self.kwargs = _openlit(tracer_provider, meter_provider)
        else:
            raise SystemExit(f"unknown variant {variant!r}")

    generation = 0
    """Counts on() and off(): workloads whose clients bind the instrumentation when made (cohere) make
    a new client when it changes."""

    def on(self) -> None:
        self.generation += 1
        for instrumentor in self.instrumentors:
            if self.variant == "openlit":  # its BaseInstrumentor bookkeeping cannot uninstrument; drive it directly
                instrumentor._instrument(**self.kwargs)
            else:
                instrumentor.instrument(**self.kwargs)

    def off(self) -> None:
        self.generation += 1
        if self.variant != "openlit":
            for instrumentor in self.instrumentors:
                instrumentor.uninstrument()
        # Also a safety net: OpenLLMetry 0.62.4's uninstrument() leaves openai 3.x's chat.completions.create
        # wrapped, and OpenLIT cannot uninstrument at all; left in place, wrappers would pile up round
        # after round and be timed as "bare".
        _unwrap("openai.resources")
        _unwrap("anthropic.resources")


def _offline_tiktoken() -> None:
    """OpenLIT counts streamed tokens with tiktoken, whose encodings are downloaded on first use; offline
    that is a network timeout per call. Stand in a byte-level encoding (no merges) so its tokenizer
    still runs; its real cost (cl100k) is likely a little higher than this."""
    import tiktoken

    stand_in = tiktoken.Encoding(
        name="offline-bytes",
        pat_str=r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
        mergeable_ranks={bytes([i]): i for i in range(256)},
        special_tokens={},
    )
    tiktoken.get_encoding = lambda name: stand_in
    tiktoken.encoding_for_model = lambda model: stand_in


def _openlit(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> tuple[list[Any], dict[str, Any]]:
    """openlit.init() sets up its instrumentors; we keep their arguments to toggle OpenAI's and Anthropic's."""
    _offline_tiktoken()
    import openlit
    from openlit.instrumentation.anthropic import AnthropicInstrumentor
    from openlit.instrumentation.openai import OpenAIInstrumentor

    captured: dict[str, Any] = {}
    original = OpenAIInstrumentor._instrument

    def capture(self: Any, **kwargs: Any) -> Any:
        captured.update(kwargs)
        return original(self, **kwargs)

    OpenAIInstrumentor._instrument = capture
    openlit.init(
        tracer=tracer_provider.get_tracer("openlit"),
        meter=meter_provider.get_meter("openlit"),
        disable_batch=True,
        collect_gpu_stats=False,
    )
    OpenAIInstrumentor._instrument = original
    _unwrap("openai.resources")
    _unwrap("anthropic.resources")
    return [OpenAIInstrumentor(), AnthropicInstrumentor()], captured


def _unwrap(package: str) -> None:
    """Undo every wrapt wrapper on a package's resource classes (openlit cannot uninstrument itself)."""
    import inspect

    import wrapt

    seen: set[int] = set()
    for module in list(sys.modules.values()):
        if not getattr(module, "__name__", "").startswith(package):
            continue
        for owner in vars(module).values():
            if not inspect.isclass(owner) or id(owner) in seen:
                continue
            seen.add(id(owner))
            for name, value in list(vars(owner).items()):
                if isinstance(value, wrapt.FunctionWrapper):
                    setattr(owner, name, value.__wrapped__)


def per_call_us(work: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        work()
    return (time.perf_counter() - started) / calls * 1e6


def measure(variant: str, calls: int, rounds: int) -> dict[str, dict[str, float]]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DroppingExporter()))
    # Global too, as opentelemetry-instrument sets it: anthropic 2.x then traces itself, bare or not.
    trace.set_tracer_provider(tracer_provider)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    toggle = Toggle(variant, tracer_provider, meter_provider)
    results: dict[str, dict[str, float]] = {}
    for name, work in workloads(toggle).items():
        if name.startswith("anthropic") and not toggle.covers_anthropic:
            continue
        for _ in range(20):  # warm up imports and pools
            work()
        bare, instrumented = [], []
        for _ in range(rounds):
            bare.append(per_call_us(work, calls))
            toggle.on()
            instrumented.append(per_call_us(work, calls))
            toggle.off()
        results[name] = {"bare_us": statistics.median(bare), "instrumented_us": statistics.median(instrumented)}
    tracer_provider.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--variant", default="aimon", choices=["aimon", "otel-openai-v2", "openllmetry", "openlit"])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = measure(args.variant, args.calls, args.rounds)
    if args.json:
        print(
            json.dumps(
                {
                    "variant": args.variant,
                    "openai": openai.__version__,
                    "anthropic": anthropic.__version__,
                    "results": results,
                }
            )
        )
        return
    print(
        f"{args.variant}, openai {openai.__version__}, anthropic {anthropic.__version__}; "
        f"{args.rounds} interleaved rounds of {args.calls} calls; median us/call\n"
    )
    print(f"{'workload':<26} {'bare':>9} {args.variant:>14} {'overhead':>9}")
    for name, r in results.items():
        overhead = (r["instrumented_us"] / r["bare_us"] - 1) * 100
        print(f"{name:<26} {r['bare_us']:>9.1f} {r['instrumented_us']:>14.1f} {overhead:>8.1f}%")


if __name__ == "__main__":
    main()

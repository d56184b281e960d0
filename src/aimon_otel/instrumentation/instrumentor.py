"""``AimonInstrumentor``: finds the installed LLM SDKs, wraps their methods, unwraps them.

Picked up with no code change by ``opentelemetry-instrument`` through the
``opentelemetry_instrumentor`` entry point, or called in code::

    AimonInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
"""

from __future__ import annotations

import atexit
import sys
import weakref
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import wrapt
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.dependencies import DependencyConflict, get_dependency_conflicts
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from aimon_otel import semconv
from aimon_otel.attribution.context import load_resolver
from aimon_otel.attribution.privacy import key_fingerprinter
from aimon_otel.budgets.guard import BudgetEvents
from aimon_otel.budgets.setup import open_guard
from aimon_otel.config import Settings, report
from aimon_otel.errors import AimonConfigError
from aimon_otel.faults import logger, report_fault
from aimon_otel.instrumentation import active
from aimon_otel.instrumentation.calls import async_wrapper, function_wrapper, sync_wrapper
from aimon_otel.instrumentation.package import _instruments_any
from aimon_otel.instrumentation.pipeline import Pipeline
from aimon_otel.instrumentation.processor import wrap_provider_processors
from aimon_otel.instrumentation.providers import anthropic as anthropic_adapter
from aimon_otel.instrumentation.providers import bedrock as bedrock_adapter
from aimon_otel.instrumentation.providers import bedrock_aio as bedrock_aio_adapter
from aimon_otel.instrumentation.providers import cohere as cohere_adapter
from aimon_otel.instrumentation.providers import gemini as gemini_adapter
from aimon_otel.instrumentation.providers import groq as groq_adapter
from aimon_otel.instrumentation.providers import litellm as litellm_adapter
from aimon_otel.instrumentation.providers import mistral as mistral_adapter
from aimon_otel.instrumentation.providers import ollama as ollama_adapter
from aimon_otel.instrumentation.providers import openai as openai_adapter
from aimon_otel.instrumentation.providers.base import Endpoint
from aimon_otel.pricing import PricingEngine, load_overrides
from aimon_otel.version import __version__

if TYPE_CHECKING:  # imported when asked for: an app that bills nothing loads none of it
    from aimon_otel.billing.balances import BalancePoller
    from aimon_otel.billing.sender import BillingSink
    from aimon_otel.pricing.updates import PriceUpdater


class AimonInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the ``openai``, ``anthropic`` and ``google-genai`` SDKs and boto3's Bedrock Runtime.

    Keyword arguments of :meth:`instrument` besides ``tracer_provider`` and
    ``meter_provider`` override settings from the environment (see :class:`Settings`).
    """

    def __init__(self) -> None:
        super().__init__()
        if hasattr(self, "_wrapped"):
            # BaseInstrumentor is a singleton whose __init__ runs on every AimonInstrumentor() call:
            # what is wrapped, and which import hooks are live, must survive that.
            return
        self._wrapped: list[tuple[Any, str]] = []
        self._rebinders: list[Callable[[], None]] = []
        self.price_updater: PriceUpdater | None = None
        """Fetches genai-prices' latest data while instrumented with ``prices_update``."""
        self.balances: BalancePoller | None = None
        """The provider balance poller while instrumented with ``provider_balances``."""
        self.billing: BillingSink | None = None
        """The billing sink while instrumented with billing on (its ``counts()`` say what became of events)."""
        """Run after unwrapping: module functions bound to a wrapped method (``ollama.chat``) bound again."""
        self._bedrock_classes: weakref.WeakSet[type] = weakref.WeakSet()
        """botocore makes a class per client: the Bedrock Runtime ones seen, unwrapped with the rest and
        wrapped again by the next ``instrument()`` (a client made while instrumented stays covered)."""
        self._generation = 0
        self._unwrap_processors: Callable[[], None] | None = None
        self.settings: Settings | None = None
        self.pipeline: Pipeline | None = None
        """The instrumented calls' telemetry; None when not instrumented."""
        self._fallback: Pipeline | None = None
        self.budget_events = BudgetEvents()
        """``on_budget_event`` listeners: kept across ``instrument()`` calls, so they can subscribe first."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments_any

    def _check_dependency_conflicts(self) -> DependencyConflict | None:
        """Any one supported SDK is enough; BaseInstrumentor would require all of them.

        One requirement at a time: ``get_dependency_conflicts`` took no "any of" list before 0.57b0.
        """
        first: DependencyConflict | None = None
        for requirement in _instruments_any:
            conflict = get_dependency_conflicts([requirement])
            if conflict is None:
                return None
            first = first or conflict
        return first

    def _instrument(self, **kwargs: Any) -> None:
        """Keyword arguments are strict (a bad one raises); the environment is lenient (logged, default used).

        Under ``opentelemetry-instrument`` nothing here may raise: the agent would skip every
        instrumentor loaded after ours.
        """
        tracer_provider = kwargs.pop("tracer_provider", None)
        meter_provider = kwargs.pop("meter_provider", None)
        engine_override = kwargs.pop("pricing_engine", None)
        settings = Settings.load(**kwargs)
        try:
            self._start(settings, tracer_provider, meter_provider, engine_override)
        except AimonConfigError:
            raise
        except Exception as fault:  # never break the app's start-up
            report_fault("instrument", fault)

    def _start(self, settings: Settings, tracer_provider: Any, meter_provider: Any, engine: Any) -> None:
        overrides = None
        if settings.pricing_file:
            try:
                overrides = load_overrides(settings.pricing_file)
            except AimonConfigError as error:
                report(settings, "pricing_file", error)
        resolver = None
        try:
            resolver = load_resolver(settings.tenant_resolver)
        except AimonConfigError as error:
            report(settings, "tenant_resolver", error)
        engine = engine or PricingEngine(overrides)
        engine.catalog.warm_up()
        self.settings = settings
        pipeline = Pipeline(
            trace.get_tracer(semconv.INSTRUMENTATION_SCOPE, __version__, tracer_provider),
            metrics.get_meter(semconv.INSTRUMENTATION_SCOPE, __version__, meter_provider),
            settings,
            engine,
            resolver,
        )
        try:
            guard = open_guard(settings, engine, self.budget_events)
        except AimonConfigError as error:
            report(settings, "budgets", error)
        else:
            if guard is not None:
                pipeline.attach_guard(guard)
        if settings.billing is not None:
            self._open_billing(settings, pipeline)
        if settings.prices_update is not None:
            from aimon_otel.pricing.updates import PriceUpdater

            self.price_updater = PriceUpdater(
                engine.catalog, settings.prices_update, settings.prices_url, pipeline.meter
            )
        if settings.provider_balances:
            from aimon_otel.billing.balances import BalancePoller

            self.balances = BalancePoller(
                settings.provider_balances,
                settings.provider_balances_interval,
                pipeline.meter,
                fingerprint=key_fingerprinter(settings),
            )
        self.pipeline = pipeline
        if settings.enrich_spans:
            self._unwrap_processors = wrap_provider_processors(
                tracer_provider or trace.get_tracer_provider(), engine, pipeline.attribution
            )
        if "openai" in settings.instrument:
            self._when_imported("openai", lambda module: self._wrap_sdk(pipeline, module, openai_adapter.TARGETS))
        if "anthropic" in settings.instrument:
            self._when_imported("anthropic", lambda module: self._wrap_sdk(pipeline, module, anthropic_adapter.TARGETS))
        if "google-genai" in settings.instrument:
            self._when_imported("google.genai", lambda module: self._wrap_sdk(pipeline, module, gemini_adapter.TARGETS))
        if "groq" in settings.instrument:
            self._when_imported("groq", lambda module: self._wrap_sdk(pipeline, module, groq_adapter.TARGETS))
        if "mistralai" in settings.instrument:
            targets = mistral_adapter.TARGETS + mistral_adapter.TARGETS_V1
            self._when_imported("mistralai", lambda module: self._wrap_sdk(pipeline, module, targets))
        if "cohere" in settings.instrument:
            self._when_imported("cohere", lambda module: self._wrap_sdk(pipeline, module, cohere_adapter.TARGETS))
        if "litellm" in settings.instrument:
            self._when_imported("litellm", lambda module: self._wrap_litellm(pipeline, module))
        if "ollama" in settings.instrument:
            self._when_imported("ollama", lambda module: self._wrap_ollama(pipeline, module))
        if "bedrock" in settings.instrument:
            self._when_imported("botocore.client", lambda module: self._wrap_bedrock(pipeline, module))
            self._when_imported("aiobotocore.client", lambda module: self._wrap_bedrock_aio(pipeline, module))

    def _open_billing(self, settings: Settings, pipeline: Pipeline) -> None:
        """Usage events to the billing system: a sink beside the ledger (every call, sampled or not)."""
        from aimon_otel.billing.setup import open_billing

        guard = pipeline.guard
        plans = None
        if guard is not None:
            from aimon_otel.budgets.limits import RunTimeLimits

            limits = RunTimeLimits(guard)

            def plans() -> dict[str, str]:
                return {p.key: p.plan for p in limits.plans() if p.field == "tenant_id"}

        try:
            sink = open_billing(settings.billing, pipeline.meter, plans)  # type: ignore[arg-type]
        except AimonConfigError as error:
            report(settings, "billing", error)
            return
        pipeline.sinks.append(sink)
        self.billing = sink
        atexit.register(sink.close)

    def _close_billing(self) -> None:
        sink, self.billing = self.billing, None
        if sink is not None:
            atexit.unregister(sink.close)
            sink.close()

    def _uninstrument(self, **kwargs: Any) -> None:
        self._generation += 1  # import hooks still pending now do nothing
        for owner, name in self._wrapped:
            unwrap(owner, name)
        self._wrapped.clear()
        for rebind in self._rebinders:
            rebind()
        self._rebinders.clear()
        for client_class in list(self._bedrock_classes):
            for name in bedrock_adapter.OPERATIONS:
                if _is_ours(client_class.__dict__.get(name)):
                    unwrap(client_class, name)
        if self._unwrap_processors is not None:
            self._unwrap_processors()
            self._unwrap_processors = None
        self._close_billing()
        if self.balances is not None:
            self.balances.close()
            self.balances = None
        if self.price_updater is not None:
            self.price_updater.close()
            self.price_updater = None
        if self.pipeline is not None:
            self.pipeline.active = False
            self.pipeline.detach_guard()
        self.pipeline = None
        self.settings = None

    def pricing_engine(self) -> PricingEngine:
        """The engine of the instrumented calls (with the pricing file), else a plain one kept for later."""
        if self.pipeline is not None:
            return self.pipeline.engine
        return self.fallback_pipeline().engine

    def fallback_pipeline(self) -> Pipeline:
        """For ``record_usage()`` without ``instrument()``: the global providers, settings from the environment."""
        if self.pipeline is not None:
            return self.pipeline
        if self._fallback is None:
            self._fallback = Pipeline(
                trace.get_tracer(semconv.INSTRUMENTATION_SCOPE, __version__),
                metrics.get_meter(semconv.INSTRUMENTATION_SCOPE, __version__),
                Settings.load(),
            )
        return self._fallback

    def _when_imported(self, module_name: str, setup: Callable[[Any], None]) -> None:
        """Run ``setup(module)`` now if the module is imported, else right after it is.

        Lazily: openai 3.x imports most resource modules only when first used, and an app may never
        import an SDK that happens to be installed; importing them all here cost over 100 ms.
        A hook that fires after ``uninstrument()`` does nothing.
        """
        generation = self._generation

        def hook(module: Any) -> None:
            if generation != self._generation:
                return
            try:
                setup(module)
            except Exception as fault:  # never break the app's import
                report_fault("instrument", fault)

        module = sys.modules.get(module_name)
        if module is not None:
            hook(module)
        else:
            wrapt.register_post_import_hook(hook, module_name)

    def _wrap_sdk(self, pipeline: Pipeline, sdk: Any, targets: Any) -> None:
        """Wrap each target method with its endpoint (one endpoint per API, shared by sync and async)."""
        stream_types = tuple(
            t for t in (getattr(sdk, "Stream", None), getattr(sdk, "AsyncStream", None)) if isinstance(t, type)
        )
        endpoints: dict[type, Endpoint] = {}
        for target in targets:
            endpoint = endpoints.get(target.endpoint)
            if endpoint is None:
                endpoint = endpoints[target.endpoint] = target.endpoint(pipeline.settings, stream_types)
            make_wrapper = getattr(endpoint, "make_wrapper", None)
            if make_wrapper is not None:
                wrapper = make_wrapper(pipeline)
            else:
                wrapper = (async_wrapper if target.is_async else sync_wrapper)(pipeline, endpoint)
            self._wrap(target.module, target.method, wrapper)

    def _wrap_litellm(self, pipeline: Pipeline, module: Any) -> None:
        """``litellm.completion`` and the other module functions the app calls (their endpoint made now:
        litellm is imported)."""
        for name, (kind, is_async) in litellm_adapter.FUNCTIONS.items():
            if (module, name) in self._wrapped or not callable(getattr(module, name, None)):
                continue
            wrapper = function_wrapper(pipeline, kind(pipeline.settings, ()), is_async)
            setattr(wrapper, _OURS, True)
            wrapt.wrap_function_wrapper(module, name, wrapper)
            self._wrapped.append((module, name))

    def _wrap_ollama(self, pipeline: Pipeline, module: Any) -> None:
        """The client classes, then ``ollama.chat`` and the other module functions, bound at import to the
        default client's methods: bound again so they call the wrapped ones (and again after unwrapping)."""
        self._wrap_sdk(pipeline, module, ollama_adapter.TARGETS)
        ollama_adapter.rebind_module_functions(module)
        self._rebinders.append(lambda: ollama_adapter.rebind_module_functions(module))

    def _wrap_bedrock(self, pipeline: Pipeline, botocore_client: Any) -> None:
        """Wrap ``ClientCreator.create_client``: each ``bedrock-runtime`` client made gets its class's four
        operations wrapped (botocore makes a class per client); no other AWS client is touched."""
        wrap_class = self._bedrock_class_wrapper(pipeline, bedrock_adapter.OPERATIONS, sync_wrapper, is_async=False)

        def create_client(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            client = wrapped(*args, **kwargs)
            wrap_class(client)
            return client

        self._wrap_in(botocore_client, "ClientCreator.create_client", create_client)

    def _wrap_bedrock_aio(self, pipeline: Pipeline, aiobotocore_client: Any) -> None:
        """``_wrap_bedrock`` for aiobotocore (and aioboto3): its own ``create_client`` is a coroutine."""
        wrap_class = self._bedrock_class_wrapper(pipeline, bedrock_aio_adapter.OPERATIONS, async_wrapper, is_async=True)

        async def create_client(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            client = await wrapped(*args, **kwargs)
            wrap_class(client)
            return client

        self._wrap_in(aiobotocore_client, "AioClientCreator.create_client", create_client)

    def _bedrock_class_wrapper(
        self,
        pipeline: Pipeline,
        operations: dict[str, Any],
        make_wrapper: Callable[[Pipeline, Any], Any],
        is_async: bool,
    ) -> Callable[[Any], None]:
        """What wraps a new client's class (when it is ``bedrock-runtime``); the classes of clients made
        under an earlier ``instrument()`` are wrapped again now."""
        wrappers = {name: make_wrapper(pipeline, kind(pipeline.settings, ())) for name, kind in operations.items()}
        for wrapper in wrappers.values():
            setattr(wrapper, _OURS, True)
        classes = self._bedrock_classes

        def wrap_class(client_class: type) -> None:
            for name, wrapper in wrappers.items():
                current = client_class.__dict__.get(name)
                if current is not None and not _is_ours(current):
                    wrapt.wrap_function_wrapper(client_class, name, wrapper)
            classes.add(client_class)

        def wrap_client(client: Any) -> None:
            try:
                if bedrock_adapter.is_bedrock_runtime(client):
                    wrap_class(type(client))
            except Exception as fault:  # never break the app's client
                report_fault("bedrock client", fault)

        for client_class in list(classes):
            if _is_async_client(client_class) == is_async:
                wrap_class(client_class)
        return wrap_client

    def _wrap(self, module_name: str, method: str, wrapper: Any) -> None:
        """Wrap ``module.Class.method`` (when the module is imported) if this SDK version has it."""
        self._when_imported(module_name, lambda module: self._wrap_in(module, method, wrapper))

    def _wrap_in(self, module: Any, method: str, wrapper: Any) -> None:
        """Wrap ``Class.method`` of an imported module, once per class."""
        class_name, method_name = method.split(".")
        try:
            owner = getattr(module, class_name)
            getattr(owner, method_name)
        except AttributeError:
            logger.debug("aimon-otel: %s.%s not in this SDK version; not wrapped", module.__name__, method)
            return
        if (owner, method_name) in self._wrapped:
            return
        current = owner.__dict__.get(method_name)
        if _is_ours(current):
            # A class that copied an already wrapped method: wrap its original, so unwrapping restores it.
            setattr(owner, method_name, current.__wrapped__)
        setattr(wrapper, _OURS, True)
        wrapt.wrap_function_wrapper(owner, method_name, wrapper)
        self._wrapped.append((owner, method_name))


_OURS = "_aimon_otel_wrapper"


def _is_async_client(client_class: type) -> bool:
    """An aiobotocore client class (its operations are coroutines)."""
    return any(base.__module__.startswith("aiobotocore.") for base in client_class.__mro__)


def _is_ours(method: Any) -> bool:
    """A method aimon-otel wrapped (not another instrumentation's wrapt wrapper)."""
    return isinstance(method, wrapt.FunctionWrapper) and bool(getattr(method._self_wrapper, _OURS, False))


active.register(lambda: AimonInstrumentor().fallback_pipeline())

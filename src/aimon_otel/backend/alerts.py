"""Alert rules on the GenAI metrics, as data: rendered to Prometheus rule files and, as an opt-in
alternative, to Grafana's alerting provisioning, so both say the same thing.

Metric names are the ones the OpenTelemetry Prometheus exporters (and the Collector's
remote write) give our instruments: ``gen_ai_usage_cost_USD_sum``,
``gen_ai_client_operation_duration_seconds_*``, ``aimon_pricing_unpriced_calls_total``.
No rule filters on a particular SDK, so other tools' ``gen_ai_*`` metrics count too.

Tiers stay firing while their condition holds (a $50 day is also over $10); every tiered alert
carries ``aimon_alert`` (its family) and Alertmanager's inhibit rules let only the highest
severity of a family notify. Every alert has a dollar or percentage figure, what it concerns,
a ``runbook_url`` (a section of RUNBOOK.md) and a link to the dashboard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

COST = "gen_ai_usage_cost_USD_sum"
CALLS = "gen_ai_client_operation_duration_seconds_count"
DURATION_BUCKETS = "gen_ai_client_operation_duration_seconds_bucket"
FIRST_CHUNK_BUCKETS = "gen_ai_client_operation_time_to_first_chunk_seconds_bucket"
UNPRICED = "aimon_pricing_unpriced_calls_total"
PRICE_DATA = "aimon_pricing_data_timestamp_seconds"
BILLING_EVENTS = "aimon_billing_events_total"
BALANCE = "aimon_provider_balance"
PRICE_CHANGE = "aimon_pricing_change_seconds"
BILLING_SPOOL = "aimon_billing_spool_size"
SPEND_HOURLY = ":gen_ai_usage_cost_usd:increase1h"
SPEND_DAILY = ":gen_ai_usage_cost_usd:increase1d"
SPEND_BY_TENANT_5M = "tenant_provider_model:gen_ai_usage_cost_usd:increase5m"
SPEND_BY_TENANT_1H = "tenant_provider_model:gen_ai_usage_cost_usd:increase1h"
SPEND_BY_KEY_1H = "api_key:gen_ai_usage_cost_usd:increase1h"
CALLS_BY_PROVIDER_5M = "provider:gen_ai_client_calls:increase5m"
FAILED_BY_PROVIDER_5M = "provider:gen_ai_client_failed_calls:increase5m"
RATE_LIMITED = (
    "RateLimitError|RESOURCE_EXHAUSTED|ThrottlingException|ServiceQuotaExceededException|TooManyRequestsError|429"
)
"""429s as each SDK names them: openai, anthropic and groq's exception, google-genai's API status, Bedrock's error
code, the HTTP status where the SDK's exception names none (mistralai's ``SDKError``)."""
AUTH_FAILED = (
    "AuthenticationError|PermissionDeniedError|UNAUTHENTICATED|PERMISSION_DENIED"
    "|AccessDeniedException|UnrecognizedClientException|ExpiredTokenException|UnauthorizedError|ForbiddenError|401|403"
)
RATE_LIMITED_CALLS = f'{CALLS}{{error_type=~"{RATE_LIMITED}"}}'
AUTH_FAILED_CALLS = f'{CALLS}{{error_type=~"{AUTH_FAILED}"}}'
BUDGET_REFUSALS = 'error_type!="aimon.budget_exceeded"'
"""Calls our own budgets refused are not provider failures."""


RESET_LOOKBACK = "1h"
"""How far back a step looks for a series' previous sample: longer than any scrape gap, so a gap is not
taken for a new series (and the whole value counted again)."""


def increments_step(window: str) -> str:
    """The step at which a new series' growth is followed: at most this much of its growth before an
    in-place restart can be lost. 1 minute for windows up to 6 hours, 5 minutes beyond (and for
    Grafana's ``$__range``), so a 30-day window is 8,640 steps, not 43,200."""
    seconds = _seconds(window)
    return "1m" if seconds is not None and seconds <= 6 * 3600 else "5m"


def counted_increase(selector: str, window: str, by: str = "", step: str | None = None) -> str:
    """How much the counters in ``selector`` grew over ``window``, summed (``by`` labels), first samples
    and in-place restarts included.

    ``increase()`` measures from a series' first sample, so what a series held when it was first
    scraped is lost: every process start (a new ``service.instance.id``), every new tenant or model
    loses the calls it made before that scrape (``make stack`` undercounted by ~18%). So, two parts:

    * series that existed when the window began count by ``increase()`` (resets handled);
    * a series that began within the window began at zero: it counts step by step (``step``), each
      step adding what it grew since the step before, or, where it fell (a restart in place: the
      same pod name, the same ``service.instance.id``), its whole new value; its first step adds
      all it holds. Then the growth since the last step, so the window ends at the query's time.

    Its highest value alone (what this counted before) lost everything before an in-place restart.
    Only Prometheus 2.42's PromQL (subqueries, ``last_over_time``): no recording rule needed, so
    backfilled history counts at once, and the window ends exactly at the query's time.
    """
    step = step or increments_step(window)
    group = f" by ({by})" if by else ""
    s, w = selector, window
    existing = f"(increase({s}[{w}]) and {s} offset {w})"
    # ``* 1`` drops the metric name, so both branches of an ``or`` are the same series.
    grew = f"(({s} - last_over_time({s}[{RESET_LOOKBACK}] offset {step})) >= 0 or {s} * 1)"
    last = f"last_over_time({s}[{w}])"
    since_last_step = f"(({last} - last_over_time({s}[{w}:{step}])) >= 0 or {last})"
    began = f"((sum_over_time({grew}[{w}:{step}]) + {since_last_step}) or {since_last_step})"
    # One series is in one part only, so the parts are joined per series and summed once.
    return f"sum{group} ({existing} or ({began} unless {s} offset {w}))"


def _seconds(window: str) -> int | None:
    """A Prometheus duration literal in seconds (``90s``, ``1h30m``, ``1d``); None for a variable."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", window)
    if not parts or "".join(n + u for n, u in parts) != window:
        return None
    return int(sum(int(n) * units[u] for n, u in parts))


@dataclass(frozen=True)
class Links:
    """Where annotations point: the runbook (RUNBOOK.md in this repository, or your copy) and Grafana.

    ``aimon-otel budgets render --grafana-url`` and ``dashboards/generate.py --grafana-url`` set them."""

    runbook: str = "RUNBOOK.md"
    grafana: str = "http://localhost:3000"

    @classmethod
    def checked(cls, grafana: str | None = None, runbook: str | None = None) -> Links:
        """Links from command-line values; a Grafana URL that is not http(s)://host raises AimonConfigError."""
        from urllib.parse import urlsplit

        from aimon_otel.errors import AimonConfigError

        links = cls()
        if grafana is not None:
            parts = urlsplit(grafana)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
                raise AimonConfigError(
                    f"--grafana-url {grafana!r}: give Grafana's base URL, e.g. https://grafana.example.com "
                    "(http or https, a host, no query)"
                )
            links = cls(links.runbook, grafana.rstrip("/"))
        if runbook is not None:
            if not runbook.strip():
                raise AimonConfigError("--runbook-url is empty: give the runbook's URL or path, e.g. RUNBOOK.md")
            links = cls(runbook.strip(), links.grafana)
        return links

    def runbook_url(self, anchor: str) -> str:
        return f"{self.runbook}#{anchor}"

    def dashboard(self, uid: str = "aimon-overview") -> str:
        return f"{self.grafana}/d/{uid}"


DEFAULT_LINKS = Links()


@dataclass(frozen=True)
class Rule:
    name: str
    expr: str
    severity: str
    summary: str
    description: str
    runbook: str
    """The RUNBOOK.md section (its anchor)."""
    for_: str = "0m"
    labels: dict[str, str] = field(default_factory=dict)

    def prometheus(self, links: Links) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_ != "0m":
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": links.runbook_url(self.runbook),
            "dashboard": links.dashboard(),
        }
        return rule


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str


@dataclass(frozen=True)
class Thresholds:
    """Defaults follow the usual LLM-spend runbooks; pass your own to ``standard_rules``."""

    daily_spend_usd: tuple[tuple[float, str], ...] = ((10, "medium"), (25, "high"), (50, "critical"))
    error_rate: tuple[tuple[float, str], ...] = ((0.10, "warning"), (0.25, "critical"))
    minimum_calls: int = 20
    """Error rates are judged only on a provider with at least this many calls in 5 minutes."""
    rate_limited_calls: int = 5
    """429 answers (rate limit or exhausted quota) from one provider in 5 minutes before alerting."""
    p95_latency_seconds: float = 30.0
    p95_first_chunk_seconds: float = 10.0
    spike_factor: float = 3.0
    spike_floor_usd: float = 1.0
    """A spike alert also needs this much spend in the hour, so $0.01 -> $0.04 stays quiet."""
    stale_price_days: int = 60
    low_balance: tuple[tuple[str, float], ...] = (("USD", 10.0), ("CNY", 70.0))
    """A provider balance (``aimon_provider_balance``) under this, per currency, warns."""
    """Prices older than this (genai-prices' release, an override file's ``checked:``) may be wrong."""


def recording_rules() -> list[Recording]:
    """Spend and calls pre-aggregated, so alerts and dashboards over long windows read few series."""
    by = "tenant_id, gen_ai_provider_name, gen_ai_request_model"
    calls = f"{CALLS}{{{BUDGET_REFUSALS}}}"
    failed = f'{CALLS}{{error_type!="", {BUDGET_REFUSALS}}}'
    return [
        Recording(SPEND_BY_TENANT_5M, counted_increase(COST, "5m", by)),
        Recording(SPEND_BY_TENANT_1H, counted_increase(COST, "1h", by)),
        Recording(SPEND_HOURLY, counted_increase(COST, "1h")),
        Recording(SPEND_BY_KEY_1H, counted_increase(f'{COST}{{aimon_api_key_id!=""}}', "1h", "aimon_api_key_id")),
        Recording(SPEND_DAILY, counted_increase(COST, "1d")),
        Recording(CALLS_BY_PROVIDER_5M, counted_increase(calls, "5m", "gen_ai_provider_name")),
        Recording(FAILED_BY_PROVIDER_5M, counted_increase(failed, "5m", "gen_ai_provider_name")),
    ]


def standard_rules(thresholds: Thresholds = Thresholds()) -> list[Rule]:
    rules: list[Rule] = []
    for amount, severity in sorted(thresholds.daily_spend_usd):
        rules.append(
            Rule(
                f"GenAIDailySpendAbove{amount:g}USD",
                f"{SPEND_DAILY} > {amount:g}",
                severity,
                f"LLM spend over the last 24h is above ${amount:g}",
                'Spend over the last 24 hours is ${{ $value | printf "%.2f" }} (all providers, models and tenants), '
                f"over the ${amount:g} {severity} line.",
                "daily-spend",
                labels={"aimon_alert": "daily_spend"},
            )
        )
    ratio = f"{FAILED_BY_PROVIDER_5M} / {CALLS_BY_PROVIDER_5M}"
    volume = f"{CALLS_BY_PROVIDER_5M} >= {thresholds.minimum_calls}"
    for rate, severity in sorted(thresholds.error_rate):
        rules.append(
            Rule(
                f"GenAIErrorRateAbove{int(rate * 100)}Percent",
                f"({ratio}) > {rate:g} and on (gen_ai_provider_name) ({volume})",
                severity,
                f"More than {rate:.0%} of calls to {{{{ $labels.gen_ai_provider_name }}}} fail",
                "{{ $value | humanizePercentage }} of the calls to {{ $labels.gen_ai_provider_name }} failed over "
                f"the last 5 minutes (judged from {thresholds.minimum_calls} calls up).",
                "error-rate",
                for_="5m",
                labels={"aimon_alert": "error_rate"},
            )
        )
    rules.append(
        Rule(
            "GenAIProviderRateLimited",
            f"{counted_increase(RATE_LIMITED_CALLS, '5m', 'gen_ai_provider_name')} >= {thresholds.rate_limited_calls}",
            "warning",
            "{{ $labels.gen_ai_provider_name }} answers 429: rate limit or quota",
            '{{ $value | printf "%.0f" }} calls to {{ $labels.gen_ai_provider_name }} were refused with HTTP 429 '
            "in the last 5 minutes: a rate limit, or an exhausted quota or balance (insufficient_quota).",
            "rate-limited",
            labels={"aimon_alert": "rate_limited"},
        )
    )
    rules.append(
        Rule(
            "GenAIProviderAuthFailures",
            f"{counted_increase(AUTH_FAILED_CALLS, '5m', 'gen_ai_provider_name')} > 0",
            "critical",
            "{{ $labels.gen_ai_provider_name }} rejects our API key",
            '{{ $value | printf "%.0f" }} calls to {{ $labels.gen_ai_provider_name }} failed authentication '
            "(401/403) in the last 5 minutes: a revoked, expired or wrong key.",
            "auth-failures",
            labels={"aimon_alert": "auth_failures"},
        )
    )
    rules.append(
        Rule(
            "GenAIHighLatencyP95",
            f"histogram_quantile(0.95, sum by (le, gen_ai_request_model) (rate({DURATION_BUCKETS}[5m]))) "
            f"> {thresholds.p95_latency_seconds:g}",
            "warning",
            "p95 latency of {{ $labels.gen_ai_request_model }} is high",
            "p95 latency of {{ $labels.gen_ai_request_model }} is {{ $value | humanizeDuration }} "
            "(whole calls; streams until their last chunk).",
            "latency",
            for_="10m",
            labels={"aimon_alert": "latency"},
        )
    )
    rules.append(
        Rule(
            "GenAISlowFirstChunkP95",
            f"histogram_quantile(0.95, sum by (le, gen_ai_request_model) (rate({FIRST_CHUNK_BUCKETS}[5m]))) "
            f"> {thresholds.p95_first_chunk_seconds:g}",
            "warning",
            "Streams from {{ $labels.gen_ai_request_model }} start slowly",
            "p95 time to the first chunk of {{ $labels.gen_ai_request_model }} streams is "
            "{{ $value | humanizeDuration }}.",
            "latency",
            for_="10m",
            labels={"aimon_alert": "first_chunk"},
        )
    )
    # Against the trailing day's median hour (this deployment's own recent history), not last week's
    # same hour: a new deployment has no last week, and then the old rule never fired.
    median_hour = f"quantile_over_time(0.5, {SPEND_HOURLY}[1d] offset 1h)"
    rules.append(
        Rule(
            "GenAISpendSpike",
            f"{SPEND_HOURLY} > {thresholds.spike_factor:g} * {median_hour} "
            f"and {SPEND_HOURLY} > {thresholds.spike_floor_usd:g}",
            "high",
            "LLM spend this hour is far above a typical hour",
            'Spend in the last hour is ${{ $value | printf "%.2f" }}, over '
            f"{thresholds.spike_factor:g}x the median hour of the day before "
            f'(${{{{ with query "{median_hour}" }}}}{{{{ . | first | value | printf "%.2f" }}}}{{{{ end }}}}).',
            "spend-spike",
            labels={"aimon_alert": "spend_spike"},
        )
    )
    # Per API key (aimon.api_key.id, with AIMON_KEY_SALT): the same test against the key's own median
    # hour, and a key unseen the day before that spends above the floor at once (a leaked key's start).
    key_median = f"quantile_over_time(0.5, {SPEND_BY_KEY_1H}[1d] offset 1h)"
    rules.append(
        Rule(
            "GenAIAPIKeySpendSpike",
            f"({SPEND_BY_KEY_1H} > {thresholds.spike_factor:g} * {key_median} and {SPEND_BY_KEY_1H} > {thresholds.spike_floor_usd:g}) "
            f"or ({SPEND_BY_KEY_1H} > {thresholds.spike_floor_usd:g} unless on (aimon_api_key_id) {key_median})",
            "high",
            "API key {{ $labels.aimon_api_key_id }} is spending far above its usual hour",
            'Calls made with API key {{ $labels.aimon_api_key_id }} spent ${{ $value | printf "%.2f" }} in the last hour, '
            f"over {thresholds.spike_factor:g}x the key's median hour of the day before, or with no spend at all the "
            "day before. A leaked or misused key looks like this: find it with `aimon-otel key-id`.",
            "api-key-spike",
            labels={"aimon_alert": "api_key_spike"},
        )
    )
    rules.append(
        Rule(
            "GenAIUnpricedCalls",
            counted_increase(
                f'{UNPRICED}{{aimon_pricing_status="unknown_model"}}',
                "1h",
                "gen_ai_provider_name, gen_ai_request_model",
            )
            + " > 0",
            "warning",
            "Calls to {{ $labels.gen_ai_request_model }} have no known price",
            '{{ $value | printf "%.0f" }} calls to {{ $labels.gen_ai_provider_name }}/{{ $labels.gen_ai_request_model }} '
            "in the last hour have no price: their spend is not counted. Add the model to AIMON_PRICING_FILE.",
            "unpriced-calls",
            labels={"aimon_alert": "unpriced"},
        )
    )
    rules.append(
        Rule(
            "GenAIPricesStale",
            f"(time() - max by (aimon_pricing_source, aimon_pricing_version) ({PRICE_DATA})) / 86400 "
            f"> {thresholds.stale_price_days}",
            "warning",
            "The {{ $labels.aimon_pricing_source }} prices in use are old",
            "The {{ $labels.aimon_pricing_source }} prices ({{ $labels.aimon_pricing_version }}) are "
            f'{{{{ $value | printf "%.0f" }}}} days old, over {thresholds.stale_price_days}: a price change since '
            "is not in the spend figures. Upgrade genai-prices, or compare the override file with the "
            "provider's price page and update its checked: date.",
            "stale-prices",
            for_="1h",
            labels={"aimon_alert": "stale_prices"},
        )
    )
    changed = "aimon_pricing_provider, aimon_pricing_model, aimon_price_change, aimon_price_name, aimon_price_old, aimon_price_new"
    rules.append(
        Rule(
            "GenAIPriceChanged",
            f"time() - max by ({changed}) ({PRICE_CHANGE}) < 3600",
            "warning",
            "The {{ $labels.aimon_price_name }} price of {{ $labels.aimon_pricing_model }} changed",
            "{{ $labels.aimon_pricing_provider }}/{{ $labels.aimon_pricing_model }}: {{ $labels.aimon_price_name }} "
            "{{ $labels.aimon_price_old }} -> {{ $labels.aimon_price_new }} USD per million tokens, in the prices "
            "fetched by AIMON_PRICES_UPDATE; calls from then on are priced with it. Budgets and forecasts "
            "move with it.",
            "price-changed",
            labels={"aimon_alert": "price_change"},
        )
    )
    by = "gen_ai_provider_name, aimon_balance_kind, currency, aimon_api_key_id"
    lines = ", ".join(f"{line:g} {currency}" for currency, line in thresholds.low_balance)
    rules.append(
        Rule(
            "GenAIProviderBalanceLow",
            " or ".join(
                f'(min by ({by}) ({BALANCE}{{currency="{currency}"}}) < {line:g})'
                for currency, line in thresholds.low_balance
            ),
            "warning",
            "The {{ $labels.gen_ai_provider_name }} balance is running low",
            "{{ $labels.gen_ai_provider_name }}'s {{ $labels.aimon_balance_kind }} balance is "
            f'{{{{ $value | printf "%.2f" }}}} {{{{ $labels.currency }}}}, under its line ({lines}): top it up '
            "before calls start failing.",
            "provider-balance-low",
            for_="5m",
            labels={"aimon_alert": "provider_balance"},
        )
    )
    rules.append(
        Rule(
            "GenAIBillingEventsLost",
            counted_increase(
                f'{BILLING_EVENTS}{{aimon_billing_outcome=~"dropped|rejected"}}', "1h", "aimon_billing_outcome"
            )
            + " > 0",
            "critical",
            "Usage events were {{ $labels.aimon_billing_outcome }}: calls that will not be billed",
            '{{ $value | printf "%.0f" }} usage events {{ $labels.aimon_billing_outcome }} in the last hour: '
            "dropped ones overflowed the spool (the billing system was unreachable too long), rejected ones "
            "were refused by the billing system (a customer it does not know). Those calls are not billed.",
            "billing-events-lost",
            labels={"aimon_alert": "billing"},
        )
    )
    rules.append(
        Rule(
            "GenAIBillingSpoolGrowing",
            f"min_over_time({BILLING_SPOOL}[15m]) > 0 and delta({BILLING_SPOOL}[15m]) > 0",
            "warning",
            "Usage events are piling up for {{ $labels.aimon_billing_destination }}",
            "{{ $labels.service_name }}'s billing spool has not emptied in 15 minutes and grew by "
            '{{ $value | printf "%.0f" }} events: {{ $labels.aimon_billing_destination }} is not taking them '
            "(see the app's log for its answer). They are kept on disk and sent when it does, up to the cap.",
            "billing-spool-growing",
            labels={"aimon_alert": "billing"},
        )
    )
    return rules


def prometheus_rule_file(rules: list[Rule], links: Links = Links(), group: str = "aimon-genai") -> dict[str, Any]:
    """One group, recording rules first: Prometheus runs a group's rules in order, so each alert reads
    the series recorded in the same evaluation."""
    recorded = [{"record": r.record, "expr": r.expr} for r in recording_rules()]
    return {"groups": [{"name": group, "rules": [*recorded, *(rule.prometheus(links) for rule in rules)]}]}


def grafana_alerting(
    rules: list[Rule],
    links: Links = Links(),
    folder: str = "aimon",
    group: str = "aimon-genai",
    datasource_uid: str = "prometheus",
) -> dict[str, Any]:
    """The same rules in Grafana's file provisioning format (apiVersion 1): an alternative to the
    Prometheus rules, not an addition (provision one or the other, or each condition notifies twice).

    Grafana's templates read the query's value as ``$values.A.Value`` (not Prometheus's ``$value``),
    and the recording rules are inlined: Grafana cannot read series the Prometheus rules record
    unless those rules also run."""
    grafana_rules: list[dict[str, Any]] = []
    for rule in rules:
        expr = inline_recordings(rule.expr)
        labels: dict[str, str] = {"severity": rule.severity, **rule.labels}
        grafana_rules.append(
            {
                "uid": _uid(rule.name),
                "title": rule.name,
                "condition": "B",
                "data": [
                    {
                        "refId": "A",
                        "relativeTimeRange": {"from": 600, "to": 0},
                        "datasourceUid": datasource_uid,
                        "model": {"refId": "A", "expr": expr, "instant": True},
                    },
                    {
                        "refId": "B",
                        "datasourceUid": "__expr__",
                        "model": {
                            "refId": "B",
                            "type": "threshold",
                            "expression": "A",
                            "conditions": [{"evaluator": {"type": "gt", "params": [0]}}],
                        },
                    },
                ],
                "noDataState": "OK",
                "execErrState": "Error",
                "for": rule.for_,
                "labels": labels,
                "annotations": {
                    "summary": _grafana_template(rule.summary),
                    "description": _grafana_template(rule.description),
                    "runbook_url": links.runbook_url(rule.runbook),
                },
            }
        )
    return {
        "apiVersion": 1,
        "groups": [{"orgId": 1, "name": group, "folder": folder, "interval": "1m", "rules": grafana_rules}],
    }


def inline_recordings(expr: str) -> str:
    """``expr`` with each recorded series replaced by the expression that records it (a subquery where
    a range is taken), for evaluators that do not run our recording rules."""
    for recorded in sorted(recording_rules(), key=lambda r: -len(r.record)):
        name, definition = re.escape(recorded.record), recorded.expr.replace("\\", "\\\\")
        expr = re.sub(name + r"\[(\w+)\]", f"({definition})[\\1:1m]", expr)
        expr = re.sub(name + r"(?![\w:])", f"({definition})", expr)
    return expr


def _grafana_template(text: str) -> str:
    """Prometheus template text as Grafana's: ``$value`` is ``$values.A.Value``; no ``query`` function."""
    text = text.replace("$value |", "$values.A.Value |").replace("{{ $value }}", "{{ $values.A.Value }}")
    if "| query" in text or 'with query "' in text:
        text = text.split(" (${{ with query")[0].rstrip(" (") + "."
    return text


def _uid(name: str) -> str:
    import hashlib

    return "aimon-" + hashlib.sha1(name.encode()).hexdigest()[:12]

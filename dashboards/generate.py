"""Generate the Grafana dashboards and the alert rule files from one definition.

    .venv/bin/python dashboards/generate.py        # rewrites the committed files

Writes ``dashboards/grafana/dashboards/*.json`` (with grafana-foundation-sdk),
``collector/rules/aimon-alerts.yml`` (Prometheus, the source of truth for alerts) and
``dashboards/grafana/alerting-alternative/aimon-alerts.yaml`` (the same rules for Grafana-managed
alerting: an alternative, not provisioned by default, or each condition would notify twice).
``tests/test_dashboards.py`` fails when the committed files differ from what this writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import bargauge, dashboard, piechart, stat, table, tempo, timeseries
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphDrawStyle
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
)

from aimon_otel.backend.alerts import (
    CALLS,
    COST,
    DEFAULT_LINKS,
    DURATION_BUCKETS,
    FIRST_CHUNK_BUCKETS,
    UNPRICED,
    Links,
    counted_increase,
    grafana_alerting,
    prometheus_rule_file,
    standard_rules,
)
from aimon_otel.budgets.rules import BALANCE, LIMIT, LIMIT_MAX, PROJECTED, RESETS_AT, SPENT_MAX, STATE, USAGE
from aimon_otel.config import AimonConfigError

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards" / "grafana" / "dashboards"
PROM_RULES = ROOT / "collector" / "rules" / "aimon-alerts.yml"
GRAFANA_ALERTS = ROOT / "dashboards" / "grafana" / "alerting-alternative" / "aimon-alerts.yaml"

PROMETHEUS = DataSourceRef(type_val="prometheus", uid="${datasource}")
TEMPO = DataSourceRef(type_val="tempo", uid="${tempo}")
TOKENS = "gen_ai_client_token_usage_sum"
FAILED = 'error_type!=""'
PRICED_APART = "aimon_usage_tokens_total"
CACHE_SAVINGS = "aimon_cost_cache_savings_USD_total"
CACHE_READ = 'aimon_token_type="cache_read"'
INPUT_TOKENS = 'gen_ai_token_type="input"'
HAS_USER = 'user_id!=""'
HAS_AGENT = 'gen_ai_agent_name!=""'
HAS_KEY = 'aimon_api_key_id!=""'
FILTER = (
    'job=~"$service", deployment_environment=~"$environment", gen_ai_provider_name=~"$provider", '
    'gen_ai_request_model=~"$model", tenant_id=~"$tenant", aimon_feature=~"$feature", gen_ai_agent_name=~"$agent"'
)


def f(metric: str, extra: str = "") -> str:
    """``metric`` with the dashboard's filters (and ``extra`` matchers)."""
    return f"{metric}{{{FILTER}{', ' + extra if extra else ''}}}"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False


def target(query: Query, ref: str) -> prom.Dataquery:
    built = prom.Dataquery().expr(query.expr).ref_id(ref).datasource(PROMETHEUS)
    if query.legend:
        built = built.legend_format(query.legend)
    return built.instant() if query.instant else built.range()


def with_targets(panel: Any, queries: list[Query]) -> Any:
    for index, query in enumerate(queries):
        panel = panel.with_target(target(query, chr(ord("A") + index)))
    return panel.datasource(PROMETHEUS)


def stat_panel(title: str, query: Query, unit: str, description: str, decimals: int | None = None) -> stat.Panel:
    panel = with_targets(stat.Panel().title(title).description(description).unit(unit).span(4).height(4), [query])
    return panel.decimals(decimals) if decimals is not None else panel


def series_panel(title: str, queries: list[Query], unit: str, description: str, width: int = 12) -> timeseries.Panel:
    return with_targets(
        timeseries.Panel().title(title).description(description).unit(unit).span(width).height(8), queries
    )


def bar_panel(title: str, query: Query | list[Query], unit: str, description: str, width: int = 8) -> bargauge.Panel:
    queries = query if isinstance(query, list) else [query]
    return with_targets(
        bargauge.Panel().title(title).description(description).unit(unit).span(width).height(8), queries
    )


KEPT = ("service", "environment", "provider", "model", "tenant", "feature", "agent")


def drill_down(to: str, label: str, then: str) -> dashboard.DashboardLink:
    """A click on a series sets the ``to`` variable to its ``label`` (the others kept): provider → model → tenant."""
    kept = "&".join(f"${{{name}:queryparam}}" for name in KEPT if name != to)
    return dashboard.DashboardLink(f"Only ${{__field.labels.{label}}}: {then}").url(
        f"/d/aimon-overview?${{__url_time_range}}&${{datasource:queryparam}}&{kept}&var-{to}=${{__field.labels.{label}}}"
    )


def variables() -> list[Any]:
    def label_variable(name: str, label: str, prom_label: str) -> dashboard.QueryVariable:
        return (
            dashboard.QueryVariable(name)
            .label(label)
            .datasource(PROMETHEUS)
            .query(f"label_values({CALLS}, {prom_label})")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(VariableOption(selected=True, text="All", value="$__all"))
        )

    return [
        dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"),
        dashboard.DatasourceVariable("tempo").label("Tempo").type("tempo"),
        label_variable("service", "Service", "job"),
        label_variable("environment", "Environment", "deployment_environment"),
        label_variable("provider", "Provider", "gen_ai_provider_name"),
        label_variable("model", "Model", "gen_ai_request_model"),
        label_variable("tenant", "Tenant", "tenant_id"),
        label_variable("feature", "Feature", "aimon_feature"),
        label_variable("agent", "Agent", "gen_ai_agent_name"),
    ]


def top_table(title: str, label: str, extra: str = "", note: str = "") -> Any:
    """Spend by ``label`` in the range, its share of all spend, and its change against the range before."""
    spend = counted_increase(f(COST, extra), "$__range", label)
    return with_targets(
        table.Panel()
        .title(title)
        .description("Spend in the range, its share of all spend, and the change against the range before." + note)
        .span(8)
        .height(8),
        [
            Query(f"topk(20, {spend})", "spend", True),
            Query(f"{spend} / scalar({counted_increase(f(COST), '$__range')})", "share", True),
            # the range before: the same count evaluated one range earlier (a 1-second subquery is how PromQL
            # shifts a whole expression in time)
            Query(f"{spend} / last_over_time(({spend})[1s:1s] offset $__range) - 1", "change", True),
        ],
    )


def overview() -> dashboard.Dashboard:
    spend = f"{counted_increase(f(COST), '$__range')}"
    calls = f"{counted_increase(f(CALLS), '$__range')}"
    failed = f"{counted_increase(f(CALLS, FAILED), '$__range')}"
    board = dashboard.Dashboard("LLM spend and usage").uid("aimon-overview").tags(["aimon", "genai", "cost"])
    board = board.time("now-24h", "now").refresh("1m").timezone("browser").editable()
    for variable in variables():
        board = board.with_variable(variable)
    panels: list[Any] = [
        stat_panel("Requests", Query(calls, instant=True), "short", "LLM API calls in the range.", 0),
        stat_panel(
            "Spend",
            Query(spend, instant=True),
            "currencyUSD",
            "Priced spend in the range (unpriced calls excluded).",
            2,
        ),
        stat_panel(
            "Tokens",
            Query(f"{counted_increase(f(TOKENS), '$__range')}", instant=True),
            "short",
            "Input and output tokens.",
            0,
        ),
        stat_panel(
            "Error rate",
            Query(f"({failed} or vector(0)) / {calls}", instant=True),  # 0%, not "No data", when none failed
            "percentunit",
            "Share of calls that failed.",
            1,
        ),
        stat_panel(
            "p95 latency",
            Query(f"histogram_quantile(0.95, {counted_increase(f(DURATION_BUCKETS), '$__range', 'le')})", instant=True),
            "s",
            "95th percentile of call duration, retries and whole streams included.",
            2,
        ),
        stat_panel(
            "30-day projection",
            Query(f"{spend} / $__range_s * 30 * 86400", instant=True),
            "currencyUSD",
            "Spend over 30 days at the range's average rate.",
            2,
        ),
        series_panel(
            "Spend over time by provider",
            [
                Query(
                    f"sum by (gen_ai_provider_name) (rate({f(COST)}[$__rate_interval])) * 3600",
                    "{{gen_ai_provider_name}}",
                )
            ],
            "currencyUSD",
            "Spend rate in USD per hour.",
        ),
        series_panel(
            "Requests over time by model",
            [Query(f"sum by (gen_ai_request_model) (rate({f(CALLS)}[$__rate_interval]))", "{{gen_ai_request_model}}")],
            "reqps",
            "Calls per second.",
        ),
        with_targets(
            piechart.Panel()
            .title("Spend by provider")
            .description("Share of spend in the range. Click a provider to see its models and tenants.")
            .data_links([drill_down("provider", "gen_ai_provider_name", "its models and tenants")])
            .unit("currencyUSD")
            .span(8)
            .height(8),
            [
                Query(
                    f"{counted_increase(f(COST), '$__range', 'gen_ai_provider_name')}", "{{gen_ai_provider_name}}", True
                )
            ],
        ),
        bar_panel(
            "Top models by spend",
            Query(
                f"topk(10, {counted_increase(f(COST), '$__range', 'gen_ai_request_model')})",
                "{{gen_ai_request_model}}",
                True,
            ),
            "currencyUSD",
            "The ten costliest models. Click a model to see its tenants.",
        ).data_links([drill_down("model", "gen_ai_request_model", "its tenants")]),
        bar_panel(
            "Spend by tenant",
            Query(f"{counted_increase(f(COST), '$__range', 'tenant_id')}", "{{tenant_id}}", True),
            "currencyUSD",
            "tenant.id from aimon_otel.attributes(...) or baggage. Click a tenant to see only its spend.",
        ).data_links([drill_down("tenant", "tenant_id", "everything for this tenant")]),
        bar_panel(
            "Spend by feature",
            Query(f"{counted_increase(f(COST), '$__range', 'aimon_feature')}", "{{aimon_feature}}", True),
            "currencyUSD",
            "aimon.feature of the calls.",
        ),
        bar_panel(
            "Spend by agent",
            Query(
                f"{counted_increase(f(COST, HAS_AGENT), '$__range', 'gen_ai_agent_name')}",
                "{{gen_ai_agent_name}}",
                True,
            ),
            "currencyUSD",
            "gen_ai.agent.name from aimon_otel.attributes(agent=...) or baggage; calls of no agent are left out.",
        ),
        bar_panel(
            "Spend by API key",
            Query(
                f"{counted_increase(f(COST, HAS_KEY), '$__range', 'aimon_api_key_id')}",
                "{{aimon_api_key_id}}",
                True,
            ),
            "currencyUSD",
            "aimon.api_key.id: a fingerprint of the key each call used (with AIMON_KEY_SALT), never the key. "
            "Find a key's with `aimon-otel key-id -`.",
        ),
        bar_panel(
            "Spend by user",
            Query(f"{counted_increase(f(COST, HAS_USER), '$__range', 'user_id')}", "{{user_id}}", True),
            "currencyUSD",
            "Only when the app sets AIMON_METRICS_INCLUDE_USER=true.",
        ),
        bar_panel(
            "Token mix",
            [
                Query(f"{counted_increase(f(TOKENS), '$__range', 'gen_ai_token_type')}", "{{gen_ai_token_type}}", True),
                Query(
                    f"{counted_increase(f(PRICED_APART), '$__range', 'aimon_token_type')}",
                    "of which {{aimon_token_type}}",
                    True,
                ),
            ],
            "short",
            "Input (cached included) and output (reasoning included) tokens, and the parts of them priced apart: "
            "cache read and write (of input), reasoning (of output).",
        ),
        bar_panel(
            "Unpriced calls",
            Query(
                f"{counted_increase(f(UNPRICED), '$__range', 'gen_ai_provider_name, gen_ai_request_model, aimon_pricing_status')}",
                "{{gen_ai_provider_name}}/{{gen_ai_request_model}} ({{aimon_pricing_status}})",
                True,
            ),
            "short",
            "Calls whose spend is not counted: add their prices to AIMON_PRICING_FILE.",
        ),
        stat_panel(
            "Price data age",
            Query(
                'min((time() - max by (aimon_pricing_source) (aimon_pricing_data_timestamp_seconds{job=~"$service"})) / 86400)',
                instant=True,
            ),
            "d",
            "Days since the prices in use were known current (genai-prices' release, an override file's checked:); "
            "the GenAIPricesStale alert fires past 60.",
            0,
        ),
        series_panel(
            "p95 latency by model",
            [
                Query(
                    f"histogram_quantile(0.95, sum by (le, gen_ai_request_model) (rate({f(DURATION_BUCKETS)}[$__rate_interval])))",
                    "{{gen_ai_request_model}}",
                )
            ],
            "s",
            "95th percentile call duration.",
        ),
        series_panel(
            "Errors by type",
            [Query(f"sum by (error_type) (rate({f(CALLS, FAILED)}[$__rate_interval]))", "{{error_type}}")],
            "reqps",
            "Failed calls per second by error.type.",
        ),
        series_panel(
            "Spend per day",
            [Query(f"{counted_increase(f(COST), '1d')}", "spend")],
            "currencyUSD",
            "Spend of each day (a bar per day: each point counts the day that ends there).",
            12,
        )
        .draw_style(GraphDrawStyle.BARS)
        .interval("1d"),
        bar_panel(
            "Cost per request by model",
            Query(
                f"{counted_increase(f(COST), '$__range', 'gen_ai_request_model')}"
                f" / {counted_increase(f(CALLS), '$__range', 'gen_ai_request_model')}",
                "{{gen_ai_request_model}}",
                True,
            ),
            "currencyUSD",
            "Average cost of a call to each model in the range.",
            12,
        ),
        bar_panel(
            "Cost per 1k tokens by model",
            Query(
                f"{counted_increase(f(COST), '$__range', 'gen_ai_request_model')} * 1000"
                f" / {counted_increase(f(TOKENS), '$__range', 'gen_ai_request_model')}",
                "{{gen_ai_request_model}}",
                True,
            ),
            "currencyUSD",
            "What a thousand tokens (input and output together) cost with each model in the range.",
            12,
        ),
        stat_panel(
            "Cache hit ratio",
            Query(
                f"({counted_increase(f(PRICED_APART, CACHE_READ), '$__range')} or vector(0))"
                f" / {counted_increase(f(TOKENS, INPUT_TOKENS), '$__range')}",  # 0%, not "No data", without caching
                instant=True,
            ),
            "percentunit",
            "Share of input tokens read from the provider's prompt cache.",
            1,
        ),
        stat_panel(
            "Cache savings",
            Query(f"{counted_increase(f(CACHE_SAVINGS), '$__range')} or vector(0)", instant=True),
            "currencyUSD",
            "What cached input would have cost at the full input price, less what it cost.",
            2,
        ),
        series_panel(
            "Time to first chunk (streams)",
            [
                Query(
                    f"histogram_quantile({q}, sum by (le) (rate({f(FIRST_CHUNK_BUCKETS)}[$__rate_interval])))",
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.95)
            ],
            "s",
            "How long streamed calls wait for their first chunk: what a user of a streaming UI feels.",
            8,
        ),
        top_table("Top tenants", "tenant_id"),
        top_table("Top features", "aimon_feature"),
        top_table("Top users", "user_id", HAS_USER, " Users appear only with AIMON_METRICS_INCLUDE_USER=true."),
        bar_panel(
            "Provider balances",
            Query(
                "min by (gen_ai_provider_name, aimon_balance_kind, currency) (aimon_provider_balance)",
                "{{gen_ai_provider_name}} {{aimon_balance_kind}} ({{currency}})",
                True,
            ),
            "short",
            "What is left to spend at each provider whose balance is read (AIMON_PROVIDER_BALANCES), in its "
            "currency: the account's credit, and the API key's own limit where it has one.",
            12,
        ),
        with_targets(
            table.Panel().title("Firing alerts").description("LLM alerts now firing in Prometheus.").span(12).height(8),
            [
                Query(
                    'sum by (alertname, severity, gen_ai_provider_name, tenant_id, aimon_budget_name) (ALERTS{alertstate="firing"})',
                    "",
                    True,
                )
            ],
        ),
        table.Panel()
        .title("Recent requests")
        .description(
            "The latest GenAI spans in Tempo, with their cost, for the tenant, model and provider chosen above."
        )
        .span(24)
        .height(10)
        .datasource(TEMPO)
        .with_target(
            tempo.TempoQuery()
            .ref_id("A")
            .query_type("traceql")
            .limit(50)
            .datasource(TEMPO)
            .query(
                '{ span.gen_ai.operation.name != nil && span.tenant.id =~ "${tenant:regex}" '
                '&& span.gen_ai.request.model =~ "${model:regex}" && span.gen_ai.provider.name =~ "${provider:regex}" } '
                "| select(span.gen_ai.request.model, span.gen_ai.usage.cost, span.tenant.id, span.aimon.feature, "
                "span.gen_ai.usage.input_tokens, span.gen_ai.usage.output_tokens)"
            )
        ),
    ]
    for number, panel in enumerate(panels, start=1):
        board = board.with_panel(panel.id(number))
    return board


def budgets() -> dashboard.Dashboard:
    """Budgets as the guard in the app counts them (its ``aimon.budget.*`` gauges): calendar periods in the
    budgets file's timezone, one row per budget and ``for_each`` key; rules from ``aimon-otel budgets render``."""
    picked = 'aimon_budget_name=~"$budget"'
    board = dashboard.Dashboard("LLM budgets").uid("aimon-budgets").tags(["aimon", "genai", "budgets"])
    board = board.time("now-7d", "now").refresh("5m").timezone("browser").editable()
    for variable in variables():
        board = board.with_variable(variable)
    board = board.with_variable(
        dashboard.QueryVariable("budget")
        .label("Budget")
        .datasource(PROMETHEUS)
        .query(f"label_values({SPENT_MAX}, aimon_budget_name)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text="All", value="$__all"))
    )
    panels: list[Any] = [
        bar_panel(
            "Budget used",
            Query(f"{USAGE}{{{picked}}}", "{{aimon_budget_name}} {{aimon_budget_key}}", True),
            "percentunit",
            "Spend in each budget's current period over its limit, as the guard in the app counts it.",
            12,
        ),
        with_targets(
            table.Panel()
            .title("Budgets")
            .description(
                "Per budget and key, period to date (calendar periods in the budgets file's timezone, as the guard "
                "counts them): spent and limit (USD, or tokens where the unit says so), the share used, the state "
                "(ok; warning past the budget's first warn_at; over at its limit), when the period resets, and the "
                "projected end-of-period spend: spent now plus the last 6 hours' spend rate times the time left."
            )
            .span(24)
            .height(8)
            .mappings(
                [
                    ValueMap(
                        {
                            "0": ValueMappingResult(text="ok", color="green"),
                            "1": ValueMappingResult(text="warning", color="orange"),
                            "2": ValueMappingResult(text="over", color="red"),
                        }
                    )
                ]
            ),
            [
                Query(f"{SPENT_MAX}{{{picked}}}", "spent", True),
                Query(f"{LIMIT_MAX}{{{picked}}}", "limit", True),
                Query(f"{USAGE}{{{picked}}}", "used", True),
                Query(f"{STATE}{{{picked}}}", "state", True),
                Query(f"max by (aimon_budget_name, aimon_budget_key) ({RESETS_AT}{{{picked}}}) * 1000", "resets", True),
                Query(f"{PROJECTED}{{{picked}}}", "projected", True),
            ],
        ),
        series_panel(
            "Spend in the current period",
            [Query(f"{SPENT_MAX}{{{picked}}}", "{{aimon_budget_name}} {{aimon_budget_key}}")],
            "short",
            "Period-to-date spend per budget and key; it falls to 0 when a period resets.",
            12,
        ),
        bar_panel(
            "Budget alerts firing",
            Query(
                f'count by (alertname, aimon_budget_name, aimon_budget_key, threshold) (ALERTS{{alertstate="firing", alertname=~"LLMBudget.*|LLMCredits.*", {picked}}})',
                "{{aimon_budget_name}} {{aimon_budget_key}} {{threshold}}",
                True,
            ),
            "short",
            "Warning (each warn_at) and reached (100%) alerts now firing, and credit balances low or used up.",
            12,
        ),
        with_targets(
            table.Panel()
            .title("Limits in force")
            .description(
                "The limit each budget and key is held to now, and where it comes from: the budgets file, the key's "
                "plan (aimon_otel.set_plan / aimon-otel budgets set-plan) or a per-key limit (set-limit; "
                "aimon-otel budgets limits says until when, by whom and why)."
            )
            .span(12)
            .height(8),
            [
                Query(
                    f"max by (aimon_budget_name, aimon_budget_key, aimon_budget_limit_source) ({LIMIT}{{{picked}}})",
                    "limit",
                    True,
                )
            ],
        ),
        bar_panel(
            "Credit balances",
            Query(
                f"min by (aimon_budget_name, aimon_budget_key) ({BALANCE})",
                "{{aimon_budget_name}} {{aimon_budget_key}}",
                True,
            ),
            "currencyUSD",
            "Prepaid balances (credits: true budgets): top-ups (aimon-otel credits add) less every call's cost.",
            12,
        ),
        series_panel(
            "Burn rate by tenant",
            [Query(f"sum by (tenant_id) (rate({f(COST)}[$__rate_interval])) * 86400", "{{tenant_id}}")],
            "currencyUSD",
            "Spend rate in USD per day.",
            12,
        ),
        bar_panel(
            "Projected end-of-month spend",
            Query(
                f"sum by (tenant_id) (rate({f(COST)}[$__range])) * 86400 * scalar(days_in_month())",
                "{{tenant_id}}",
                True,
            ),
            "currencyUSD",
            "The range's average daily spend times the days in this month.",
            12,
        ),
    ]
    for number, panel in enumerate(panels, start=1):
        board = board.with_panel(panel.id(number))
    return board


def flow(panels: list[dict[str, Any]]) -> None:
    """Place panels left to right on Grafana's 24-column grid, a new row when the next does not fit
    (the SDK's own placement does not wrap: a panel ran off the right edge)."""
    x = y = row_height = 0
    for panel in panels:
        grid = panel["gridPos"]
        if x + grid["w"] > 24:
            x, y, row_height = 0, y + row_height, 0
        grid["x"], grid["y"] = x, y
        x += grid["w"]
        row_height = max(row_height, grid["h"])


def render_all(links: Links = DEFAULT_LINKS) -> dict[Path, str]:
    """Every generated file; ``links`` is where the alerts' annotations point (Grafana, the runbook)."""
    files: dict[Path, str] = {}
    for board in (overview(), budgets()):
        built = board.build()
        data = json.loads(json.dumps(built, cls=JSONEncoder))
        flow(data["panels"])
        files[DASHBOARDS / f"{built.uid}.json"] = json.dumps(data, indent=2, sort_keys=True) + "\n"
    rules = standard_rules()
    header = "# Generated by dashboards/generate.py from aimon_otel.backend.alerts; edit that, not this.\n"
    files[PROM_RULES] = header + yaml.safe_dump(prometheus_rule_file(rules, links), sort_keys=False, width=200)
    files[GRAFANA_ALERTS] = header + yaml.safe_dump(grafana_alerting(rules, links), sort_keys=False, width=200)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the dashboards and the static alert rules.")
    parser.add_argument("--grafana-url", metavar="URL", help="Grafana's base URL in the alerts' dashboard links")
    parser.add_argument("--runbook-url", metavar="URL", help="the runbook the alerts link to (default: RUNBOOK.md)")
    args = parser.parse_args(argv)
    try:
        links = Links.checked(args.grafana_url, args.runbook_url)
    except AimonConfigError as error:
        parser.error(str(error))
    for path, text in render_all(links).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

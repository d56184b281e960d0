"""The alert rules on the real promtool: checked, then unit-tested minute by minute with full annotations.

The unit test is built here and run by ``promtool test rules`` against the committed rule file.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.tools import require

ROOT = Path(__file__).resolve().parents[1]
RULES = sorted((ROOT / "collector" / "rules").glob("*.yml"))
DASHBOARD = "http://localhost:3000/d/aimon-overview"
CALLS = "gen_ai_client_operation_duration_seconds_count"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("promtool"), *args], capture_output=True, text=True, timeout=600, check=False)


def test_promtool_check_rules() -> None:
    assert len(RULES) == 2
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2


def alert(labels: dict[str, str], summary: str, description: str, runbook: str) -> dict[str, Any]:
    return {
        "exp_labels": labels,
        "exp_annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"RUNBOOK.md#{runbook}",
            "dashboard": DASHBOARD,
        },
    }


def daily(amount: int, severity: str, spent: str) -> dict[str, Any]:
    return alert(
        {"severity": severity, "aimon_alert": "daily_spend"},
        f"LLM spend over the last 24h is above ${amount}",
        f"Spend over the last 24 hours is ${spent} (all providers, models and tenants), "
        f"over the ${amount} {severity} line.",
        "daily-spend",
    )


def spend_series(per_minute: float, minutes: int = 1500, **labels: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in {"tenant_id": "acme", **labels}.items())
    return {"series": f"gen_ai_usage_cost_USD_sum{{{inner}}}", "values": f"0+{per_minute}x{minutes}"}


def calls(provider: str, per_minute: int, error_type: str = "", minutes: int = 30) -> dict[str, str]:
    error = f', error_type="{error_type}"' if error_type else ""
    return {"series": f'{CALLS}{{gen_ai_provider_name="{provider}"{error}}}', "values": f"0+{per_minute}x{minutes}"}


def case(
    series: list[dict[str, str]], checks: list[tuple[int, str, list[dict[str, Any]]]], interval: str = "1m"
) -> dict[str, Any]:
    return {
        "interval": interval,
        "input_series": series,
        "alert_rule_test": [{"eval_time": f"{m}m", "alertname": name, "exp_alerts": exp} for m, name, exp in checks],
    }


def bucket(metric: str, model: str, le: str, values: str) -> dict[str, str]:
    return {
        "series": f'gen_ai_client_operation_{metric}_bucket{{gen_ai_request_model="{model}", le="{le}"}}',
        "values": values,
    }


def error_rate(rate: int, severity: str, provider: str, percent: str) -> dict[str, Any]:
    return alert(
        {"severity": severity, "aimon_alert": "error_rate", "gen_ai_provider_name": provider},
        f"More than {rate}% of calls to {provider} fail",
        f"{percent} of the calls to {provider} failed over the last 5 minutes (judged from 20 calls up).",
        "error-rate",
    )


def unit_tests() -> dict[str, Any]:
    tests = [
        # $30 over the last day: the $10 (medium) and $25 (high) tiers fire and stay firing together
        # (Alertmanager's inhibit rule lets only the high one notify); $50 does not.
        case(
            [spend_series(0.0208333333, gen_ai_provider_name="openai", gen_ai_request_model="gpt-4o")],
            [
                (1440, "GenAIDailySpendAbove10USD", [daily(10, "medium", "30.00")]),
                (1440, "GenAIDailySpendAbove25USD", [daily(25, "high", "30.00")]),
                (1440, "GenAIDailySpendAbove50USD", []),
            ],
        ),
        # $60 a day: all three tiers.
        case(
            [spend_series(0.0416666667)],
            [
                (1440, "GenAIDailySpendAbove10USD", [daily(10, "medium", "60.00")]),
                (1440, "GenAIDailySpendAbove50USD", [daily(50, "critical", "60.00")]),
            ],
        ),
        # $5 a day: none.
        case([spend_series(0.0034722222)], [(1440, "GenAIDailySpendAbove10USD", [])]),
        # openai: 20% of 10 calls a minute fail: the 10% warning after its 5 minutes, not the 25% critical.
        # anthropic: every call fails, but 2 calls in 5 minutes are too few to judge. Calls our own budgets
        # refused are not failures of the provider.
        case(
            [
                calls("openai", 8),
                calls("openai", 2, "APIConnectionError"),
                calls("openai", 5, "aimon.budget_exceeded"),
                {
                    "series": f'{CALLS}{{gen_ai_provider_name="anthropic", error_type="InternalServerError"}}',
                    "values": "0+0.4x30",
                },
            ],
            [
                (4, "GenAIErrorRateAbove10Percent", []),
                (15, "GenAIErrorRateAbove10Percent", [error_rate(10, "warning", "openai", "20%")]),
                (15, "GenAIErrorRateAbove25Percent", []),
            ],
        ),
        # Half of anthropic's 20 calls a minute fail: both tiers.
        case(
            [calls("anthropic", 10), calls("anthropic", 10, "InternalServerError")],
            [(15, "GenAIErrorRateAbove25Percent", [error_rate(25, "critical", "anthropic", "50%")])],
        ),
        # 429s from openai (rate limit or quota) and a rejected key at anthropic.
        case(
            [
                calls("openai", 2, "RateLimitError"),
                calls("anthropic", 1, "AuthenticationError"),
                calls("groq", 1, "RateLimitError"),
                calls("gcp.gemini", 1, "RESOURCE_EXHAUSTED"),  # google-genai's 429
                calls("gcp.vertex_ai", 1, "PERMISSION_DENIED"),
                calls("aws.bedrock", 1, "ThrottlingException"),  # boto3's bedrock-runtime error code
                calls("aws.bedrock", 1, "AccessDeniedException"),
            ],
            [
                (
                    10,
                    "GenAIProviderRateLimited",
                    [
                        alert(
                            {"severity": "warning", "aimon_alert": "rate_limited", "gen_ai_provider_name": "openai"},
                            "openai answers 429: rate limit or quota",
                            "10 calls to openai were refused with HTTP 429 in the last 5 minutes: a rate limit, "
                            "or an exhausted quota or balance (insufficient_quota).",
                            "rate-limited",
                        ),
                        alert(
                            {"severity": "warning", "aimon_alert": "rate_limited", "gen_ai_provider_name": "groq"},
                            "groq answers 429: rate limit or quota",
                            "5 calls to groq were refused with HTTP 429 in the last 5 minutes: a rate limit, "
                            "or an exhausted quota or balance (insufficient_quota).",
                            "rate-limited",
                        ),
                        alert(
                            {
                                "severity": "warning",
                                "aimon_alert": "rate_limited",
                                "gen_ai_provider_name": "gcp.gemini",
                            },
                            "gcp.gemini answers 429: rate limit or quota",
                            "5 calls to gcp.gemini were refused with HTTP 429 in the last 5 minutes: a rate limit, "
                            "or an exhausted quota or balance (insufficient_quota).",
                            "rate-limited",
                        ),
                        alert(
                            {
                                "severity": "warning",
                                "aimon_alert": "rate_limited",
                                "gen_ai_provider_name": "aws.bedrock",
                            },
                            "aws.bedrock answers 429: rate limit or quota",
                            "5 calls to aws.bedrock were refused with HTTP 429 in the last 5 minutes: a rate limit, "
                            "or an exhausted quota or balance (insufficient_quota).",
                            "rate-limited",
                        ),
                    ],
                ),
                (
                    10,
                    "GenAIProviderAuthFailures",
                    [
                        alert(
                            {
                                "severity": "critical",
                                "aimon_alert": "auth_failures",
                                "gen_ai_provider_name": "anthropic",
                            },
                            "anthropic rejects our API key",
                            "5 calls to anthropic failed authentication (401/403) in the last 5 minutes: "
                            "a revoked, expired or wrong key.",
                            "auth-failures",
                        ),
                        alert(
                            {
                                "severity": "critical",
                                "aimon_alert": "auth_failures",
                                "gen_ai_provider_name": "gcp.vertex_ai",
                            },
                            "gcp.vertex_ai rejects our API key",
                            "5 calls to gcp.vertex_ai failed authentication (401/403) in the last 5 minutes: "
                            "a revoked, expired or wrong key.",
                            "auth-failures",
                        ),
                        alert(
                            {
                                "severity": "critical",
                                "aimon_alert": "auth_failures",
                                "gen_ai_provider_name": "aws.bedrock",
                            },
                            "aws.bedrock rejects our API key",
                            "5 calls to aws.bedrock failed authentication (401/403) in the last 5 minutes: "
                            "a revoked, expired or wrong key.",
                            "auth-failures",
                        ),
                    ],
                ),
            ],
        ),
        # A model with no price.
        case(
            [
                {
                    "series": 'aimon_pricing_unpriced_calls_total{gen_ai_provider_name="openai", '
                    'gen_ai_request_model="ft-x", aimon_pricing_status="unknown_model"}',
                    "values": "0+1x90",
                }
            ],
            [
                (
                    70,
                    "GenAIUnpricedCalls",
                    [
                        alert(
                            {
                                "severity": "warning",
                                "aimon_alert": "unpriced",
                                "gen_ai_provider_name": "openai",
                                "gen_ai_request_model": "ft-x",
                            },
                            "Calls to ft-x have no known price",
                            "60 calls to openai/ft-x in the last hour have no price: their spend is not counted. "
                            "Add the model to AIMON_PRICING_FILE.",
                            "unpriced-calls",
                        )
                    ],
                )
            ],
        ),
        # A price change seen at minute 5 (the gauge holds when): firing from then for an hour, not after.
        case(
            [
                {
                    "series": 'aimon_pricing_change_seconds{aimon_pricing_provider="openai", '
                    'aimon_pricing_model="gpt-4o-mini", aimon_price_change="changed", aimon_price_name="input_mtok", '
                    'aimon_price_old="0.15", aimon_price_new="0.2", service_name="app"}',
                    "values": "_x5 300x90",
                },
            ],
            [
                (3, "GenAIPriceChanged", []),
                (
                    30,
                    "GenAIPriceChanged",
                    [
                        alert(
                            {
                                "severity": "warning",
                                "aimon_alert": "price_change",
                                "aimon_pricing_provider": "openai",
                                "aimon_pricing_model": "gpt-4o-mini",
                                "aimon_price_change": "changed",
                                "aimon_price_name": "input_mtok",
                                "aimon_price_old": "0.15",
                                "aimon_price_new": "0.2",
                            },
                            "The input_mtok price of gpt-4o-mini changed",
                            "openai/gpt-4o-mini: input_mtok 0.15 -> 0.2 USD per million tokens, in the prices "
                            "fetched by AIMON_PRICES_UPDATE; calls from then on are priced with it. Budgets and "
                            "forecasts move with it.",
                            "price-changed",
                        )
                    ],
                ),
                (70, "GenAIPriceChanged", []),
            ],
        ),
        # Balances: OpenRouter's account falls $1 a minute from $20 (under $10 from minute 11, firing 5 minutes
        # later); DeepSeek's 110 CNY stays over its 70 CNY line; a key limit at $50 never fires.
        case(
            [
                {
                    "series": 'aimon_provider_balance{gen_ai_provider_name="openrouter", aimon_balance_kind="account", '
                    'currency="USD", service_name="app"}',
                    "values": "20-1x19",
                },
                {
                    "series": 'aimon_provider_balance{gen_ai_provider_name="deepseek", aimon_balance_kind="account", '
                    'currency="CNY", service_name="app"}',
                    "values": "110x19",
                },
                {
                    "series": 'aimon_provider_balance{gen_ai_provider_name="openrouter", '
                    'aimon_balance_kind="key_limit", currency="USD", aimon_api_key_id="3f9a1c2b7d4e", '
                    'service_name="app"}',
                    "values": "50x19",
                },
            ],
            [
                (12, "GenAIProviderBalanceLow", []),
                (
                    17,
                    "GenAIProviderBalanceLow",
                    [
                        alert(
                            {
                                "severity": "warning",
                                "aimon_alert": "provider_balance",
                                "gen_ai_provider_name": "openrouter",
                                "aimon_balance_kind": "account",
                                "currency": "USD",
                            },
                            "The openrouter balance is running low",
                            "openrouter's account balance is 3.00 USD, under its line (10 USD, 70 CNY): top it up "
                            "before calls start failing.",
                            "provider-balance-low",
                        )
                    ],
                ),
            ],
        ),
        # Billing: 15 events dropped after minute 10 (the spool overflowed), 4000 sent (never an alert).
        case(
            [
                {
                    "series": 'aimon_billing_events_total{aimon_billing_outcome="dropped", service_name="app"}',
                    "values": "_x10 15x50",
                },
                {
                    "series": 'aimon_billing_events_total{aimon_billing_outcome="sent", service_name="app"}',
                    "values": "0+100x60",
                },
            ],
            [
                (5, "GenAIBillingEventsLost", []),
                (
                    30,
                    "GenAIBillingEventsLost",
                    [
                        alert(
                            {"severity": "critical", "aimon_alert": "billing", "aimon_billing_outcome": "dropped"},
                            "Usage events were dropped: calls that will not be billed",
                            "15 usage events dropped in the last hour: dropped ones overflowed the spool (the "
                            "billing system was unreachable too long), rejected ones were refused by the billing "
                            "system (a customer it does not know). Those calls are not billed.",
                            "billing-events-lost",
                        )
                    ],
                ),
            ],
        ),
        # A spool that grows 10 events a minute from minute 0 (the billing system is down), and one that
        # empties every other minute (a busy, healthy sender): only the first, once it never emptied in 15m.
        case(
            [
                {
                    "series": 'aimon_billing_spool_size{aimon_billing_destination="lago", service_name="app"}',
                    "values": "0+10x40",
                },
                {
                    "series": 'aimon_billing_spool_size{aimon_billing_destination="stripe", service_name="api"}',
                    "values": "0 50 " * 20,
                },
            ],
            [
                (10, "GenAIBillingSpoolGrowing", []),
                (
                    30,
                    "GenAIBillingSpoolGrowing",
                    [
                        alert(
                            {
                                "severity": "warning",
                                "aimon_alert": "billing",
                                "aimon_billing_destination": "lago",
                                "service_name": "app",
                            },
                            "Usage events are piling up for lago",
                            "app's billing spool has not emptied in 15 minutes and grew by 150 events: lago is not "
                            "taking them (see the app's log for its answer). They are kept on disk and sent when it "
                            "does, up to the cap.",
                            "billing-spool-growing",
                        )
                    ],
                ),
            ],
        ),
        # Price data 61 days old at time 0 (fires after its hour), and 59 days old (never fires).
        case(
            [
                {
                    "series": 'aimon_pricing_data_timestamp_seconds{aimon_pricing_source="genai-prices", '
                    'aimon_pricing_version="0.2.3", service_name="app"}',
                    "values": f"{-61 * 86400}x90",
                },
                {
                    "series": 'aimon_pricing_data_timestamp_seconds{aimon_pricing_source="override", '
                    'aimon_pricing_version="prices.yaml", service_name="app"}',
                    "values": f"{-59 * 86400}x90",
                },
            ],
            [
                (30, "GenAIPricesStale", []),
                (
                    70,
                    "GenAIPricesStale",
                    [
                        alert(
                            {
                                "severity": "warning",
                                "aimon_alert": "stale_prices",
                                "aimon_pricing_source": "genai-prices",
                                "aimon_pricing_version": "0.2.3",
                            },
                            "The genai-prices prices in use are old",
                            "The genai-prices prices (0.2.3) are 61 days old, over 60: a price change since is "
                            "not in the spend figures. Upgrade genai-prices, or compare the override file with "
                            "the provider's price page and update its checked: date.",
                            "stale-prices",
                        )
                    ],
                ),
            ],
        ),
        # A new deployment (no last week): $0.50 an hour for a day, then $2 in an hour: a spike against
        # the trailing day's median hour ($0.50).
        case(
            [
                {
                    "series": 'gen_ai_usage_cost_USD_sum{tenant_id="acme"}',
                    "values": "0+0.0083333333x1500 12.5+0.0333333333x90",
                }
            ],
            [
                (1440, "GenAISpendSpike", []),
                (
                    1561,
                    "GenAISpendSpike",
                    [
                        alert(
                            {"severity": "high", "aimon_alert": "spend_spike"},
                            "LLM spend this hour is far above a typical hour",
                            "Spend in the last hour is $2.00, over 3x the median hour of the day before ($0.50).",
                            "spend-spike",
                        )
                    ],
                ),
            ],
        ),
        # Per API key: a1 spends $0.50 an hour for a day, then $2 in an hour (a spike); b2 stays at $0.50;
        # c3 is unseen until minute 1501, then spends $1.50 in its first hour (a new key above the $1 floor).
        case(
            [
                {
                    "series": 'gen_ai_usage_cost_USD_sum{aimon_api_key_id="a1"}',
                    "values": "0+0.0083333333x1500 12.5+0.0333333333x90",
                },
                {"series": 'gen_ai_usage_cost_USD_sum{aimon_api_key_id="b2"}', "values": "0+0.0083333333x1590"},
                {"series": 'gen_ai_usage_cost_USD_sum{aimon_api_key_id="c3"}', "values": "_x1500 0+0.025x90"},
                {"series": "gen_ai_usage_cost_USD_sum", "values": "0+1x1590"},  # no key (no salt): never alone
            ],
            [
                (1440, "GenAIAPIKeySpendSpike", []),
                (
                    1561,
                    "GenAIAPIKeySpendSpike",
                    [
                        alert(
                            {"severity": "high", "aimon_alert": "api_key_spike", "aimon_api_key_id": key},
                            f"API key {key} is spending far above its usual hour",
                            f"Calls made with API key {key} spent ${spent} in the last hour, over 3x the key's "
                            "median hour of the day before, or with no spend at all the day before. A leaked or "
                            "misused key looks like this: find it with `aimon-otel key-id`.",
                            "api-key-spike",
                        )
                        for key, spent in (("a1", "2.00"), ("c3", "1.50"))
                    ],
                ),
            ],
        ),
        # gpt-4o answers in about 45 s for 15 minutes: warning after 10; gpt-4o-mini stays quiet.
        case(
            [
                bucket("duration_seconds", "gpt-4o", "20.48", "0x30"),
                bucket("duration_seconds", "gpt-4o", "81.92", "0+10x30"),
                bucket("duration_seconds", "gpt-4o", "+Inf", "0+10x30"),
                bucket("duration_seconds", "gpt-4o-mini", "1.28", "0+10x30"),
                bucket("duration_seconds", "gpt-4o-mini", "+Inf", "0+10x30"),
            ],
            [
                (8, "GenAIHighLatencyP95", []),
                (
                    20,
                    "GenAIHighLatencyP95",
                    [
                        alert(
                            {"severity": "warning", "aimon_alert": "latency", "gen_ai_request_model": "gpt-4o"},
                            "p95 latency of gpt-4o is high",
                            "p95 latency of gpt-4o is 1m 18s (whole calls; streams until their last chunk).",
                            "latency",
                        )
                    ],
                ),
            ],
        ),
        # Streams of gpt-4o whose first chunk takes ~15 s.
        case(
            [
                bucket("time_to_first_chunk_seconds", "gpt-4o", "10.24", "0x30"),
                bucket("time_to_first_chunk_seconds", "gpt-4o", "20.48", "0+10x30"),
                bucket("time_to_first_chunk_seconds", "gpt-4o", "+Inf", "0+10x30"),
            ],
            [
                (
                    20,
                    "GenAISlowFirstChunkP95",
                    [
                        alert(
                            {"severity": "warning", "aimon_alert": "first_chunk", "gen_ai_request_model": "gpt-4o"},
                            "Streams from gpt-4o start slowly",
                            "p95 time to the first chunk of gpt-4o streams is 19.97s.",
                            "latency",
                        )
                    ],
                )
            ],
        ),
    ]
    return {
        "rule_files": [str(ROOT / "collector" / "rules" / "aimon-alerts.yml")],
        "evaluation_interval": "1m",
        "tests": tests,
    }


def test_promtool_unit_tests(tmp_path: Path) -> None:
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(unit_tests(), sort_keys=False))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_runbook_section_and_a_dashboard() -> None:
    sections = {line[3:].strip() for line in (ROOT / "RUNBOOK.md").read_text().splitlines() if line.startswith("## ")}
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                annotations = rule["annotations"]
                assert annotations["runbook_url"].split("#")[1] in sections, rule["alert"]
                assert annotations["dashboard"].startswith("http://localhost:3000/d/aimon-"), rule["alert"]


def test_recorded_spend_counts_what_new_series_held_at_their_first_scrape(tmp_path: Path) -> None:
    """A process that stops (instance a) and one that starts after it (instance b, already $5 in at its
    first scrape), plus a new tenant with a single sample: the hour's spend is all of it, 10 + 23 + 2,
    exactly; plain increase() loses most of each new series' first value."""
    series = [
        {"series": 'gen_ai_usage_cost_USD_sum{tenant_id="acme", instance="a"}', "values": "1+1x9"},  # 1..10
        {"series": 'gen_ai_usage_cost_USD_sum{tenant_id="acme", instance="b"}', "values": "_x11 5+1x18"},  # 5..23
        {"series": 'gen_ai_usage_cost_USD_sum{tenant_id="initech", instance="b"}', "values": "_x29 2"},  # 2
    ]
    test = {
        "rule_files": [str(ROOT / "collector" / "rules" / "aimon-alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {"expr": ":gen_ai_usage_cost_usd:increase1h", "eval_time": "29m",
                     "exp_samples": [{"labels": ":gen_ai_usage_cost_usd:increase1h", "value": 35}]},
                    {"expr": "sum(increase(gen_ai_usage_cost_USD_sum[1h]))", "eval_time": "29m",
                     "exp_samples": [{"labels": "{}", "value": 29}]},  # 17% short (extrapolation recovers a little)
                ],
            }
        ],
    }  # fmt: skip
    path = tmp_path / "counts_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# A counter per series, one value a minute from minute 0 ("_": no sample that minute).
IN_PLACE = {
    # began at minute 40 (its pod's first scrape, $1 in), restarted in place at 50 (the same pod name, so
    # the same series): the $10 before the restart must still count, and the $80 after it
    'gen_ai_usage_cost_USD_sum{tenant_id="acme", instance="pod-1"}': ["_"] * 40
    + list(range(1, 11))
    + ["_"]
    + list(range(2, 82, 2)),
    # running before every window, restarted in place at minute 60 (increase() handles that reset)
    'gen_ai_usage_cost_USD_sum{tenant_id="acme", instance="pod-2"}': list(range(0, 60)) + list(range(1, 32)),
    # a new tenant seen in the last two minutes only
    'gen_ai_usage_cost_USD_sum{tenant_id="globex", instance="pod-2"}': ["_"] * 89 + [2, 3],
}


def grown(values: list[Any], start: int, end: int) -> float:
    """What a counter grew in minutes (start, end], worked out sample by sample: each sample adds what it
    rose since the one before, or its whole value after a fall (a restart) or as the series' first."""
    total, previous = 0.0, None
    for minute, value in enumerate(values):
        if value == "_":
            continue
        if start < minute <= end:
            total += value if previous is None or value < previous else value - previous
        previous = value
    return total


def test_spend_counts_series_that_began_in_the_window_and_restarted_in_place(tmp_path: Path) -> None:
    """Every minute from 31 to 90, the last hour's recorded spend equals what the app recorded, exactly,
    across an in-place restart of a series that began inside the window (pod-1 at minute 50: counting its
    highest value alone loses the $10 before the restart)."""
    tests = []
    for minute in range(31, 91):
        expected = sum(grown(values, minute - 60, minute) for values in IN_PLACE.values())
        tests.append(
            {
                "expr": ":gen_ai_usage_cost_usd:increase1h",
                "eval_time": f"{minute}m",
                "exp_samples": [{"labels": ":gen_ai_usage_cost_usd:increase1h", "value": expected}],
            }
        )
    assert tests[-1]["exp_samples"][0]["value"] == 10 + 80 + (29 + 31) + 3  # type: ignore[index]
    series = [{"series": name, "values": " ".join(map(str, values))} for name, values in IN_PLACE.items()]
    test = {
        "rule_files": [str(ROOT / "collector" / "rules" / "aimon-alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    path = tmp_path / "in_place_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

"""Cost per call of finding who a call is for: attributes(...), baggage, and the tenant resolver.

.venv/bin/python bench/attribution.py

The resolver is called only when attributes(...) and baggage leave a value missing; this prints
what each source costs per call (``current_attributes()``, which every instrumented call runs once).
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from opentelemetry import baggage
from opentelemetry import context as otel_context

import aimon_otel
from aimon_otel.attribution import context


def resolver() -> dict[str, str]:
    return {"tenant_id": "resolved", "user_id": "u-1", "feature": "chat"}


def per_call_us(setup: Callable[[], object], with_resolver: object, number: int = 200_000) -> float:
    token = setup()
    find = context.current_attributes

    def attribution() -> object:
        return find(None, with_resolver)  # type: ignore[arg-type]

    try:
        return min(timeit.repeat(attribution, number=number, repeat=5)) / number * 1e6
    finally:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]


def main() -> None:
    rows: list[tuple[str, Callable[[], object], object]] = [
        ("nothing set, no resolver", lambda: None, None),
        ("resolver only (called every call)", lambda: None, resolver),
        (
            "attributes(tenant, user, feature) + resolver (not called)",
            lambda: otel_context.attach(
                otel_context.set_value(
                    context._KEY, aimon_otel.attributes(tenant_id="acme", user_id="u", feature="f").values
                )
            ),
            resolver,
        ),
        (
            "attributes(all five: + agent, conversation) + resolver",
            lambda: otel_context.attach(
                otel_context.set_value(
                    context._KEY,
                    aimon_otel.attributes(
                        tenant_id="acme", user_id="u", feature="f", agent="bot", conversation_id="c-1"
                    ).values,
                )
            ),
            resolver,
        ),
        (
            "attributes(tenant) + resolver (fills user, feature)",
            lambda: otel_context.attach(
                otel_context.set_value(context._KEY, aimon_otel.attributes(tenant_id="acme").values)
            ),
            resolver,
        ),
        (
            "baggage tenant.id, no resolver",
            lambda: otel_context.attach(baggage.set_baggage("tenant.id", "from-upstream")),
            None,
        ),
    ]
    print(f"{'source':<58} {'us per call':>11}")
    for label, setup, with_resolver in rows:
        print(f"{label:<58} {per_call_us(setup, with_resolver):>11.3f}")


if __name__ == "__main__":
    main()

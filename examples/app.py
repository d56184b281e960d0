"""An ordinary app calling OpenAI, Anthropic, Gemini and Bedrock, run under ``opentelemetry-instrument``.

The aimon-otel lines are ``aimon_otel.attributes(...)``, which says which tenant and feature a
request serves so spend can be split by them, and, for budgets (``AIMON_BUDGETS``), a listener
for budget events and an ``except aimon_otel.BudgetExceeded``. Everything else is the plain SDK.
"""

from __future__ import annotations

import asyncio
import os

import anthropic
import openai
from openai import AsyncOpenAI, OpenAI

import aimon_otel

MESSAGES = [{"role": "user", "content": "Write a haiku about observability."}]


def support_reply(client: OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    print("chat:", reply.choices[0].message.content)
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        if chunk.choices
    )
    print("stream:", streamed)


def search(client: OpenAI) -> None:
    if hasattr(client, "responses"):
        print("responses:", client.responses.create(model="gpt-4.1-mini", input="Name one metric.").output_text)
    vector = client.embeddings.create(model="text-embedding-3-small", input="observability").data[0].embedding
    print("embedding dimensions:", len(vector))


async def batch_summaries() -> list[str]:
    async_client = AsyncOpenAI()
    replies = await asyncio.gather(
        *[async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES) for _ in range(2)]
    )
    return [r.id for r in replies]


def draft_email() -> None:
    client = anthropic.Anthropic()  # ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL from the environment
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=300, messages=MESSAGES)
    print("anthropic:", message.content[0].text)
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=300, messages=MESSAGES) as stream:
        print("anthropic stream:", "".join(stream.text_stream))


def gemini_agent() -> None:
    """Gemini through google-genai, as a named agent in a conversation (spend by agent on the dashboard)."""
    try:
        from google import genai
    except ImportError:
        return
    base_url = os.environ.get("GOOGLE_GEMINI_BASE_URL")  # the demo's fake provider (older SDKs ignore the variable)
    client = genai.Client(http_options={"base_url": base_url} if base_url else None)  # GOOGLE_API_KEY
    with aimon_otel.attributes(agent="research-bot", conversation_id="c-42"):
        reply = client.models.generate_content(model="gemini-2.5-flash", contents="Name one SLO.")
        print("gemini:", reply.text)
        streamed = "".join(
            c.text or "" for c in client.models.generate_content_stream(model="gemini-2.5-flash", contents="Again.")
        )
        print("gemini stream:", streamed)


def trial_tenant(client: OpenAI) -> None:
    """A free tenant on a $0.0001 monthly block budget: a few calls, then refused before sending; upgraded to
    the pro plan ($0.001) while the app runs, its next call goes through, the month's spend kept."""
    for number in range(1, 7):
        if number == 6:
            aimon_otel.set_plan(tenant_id="trial", plan="pro", reason="upgraded in the demo")
            print("budget trial upgraded to the pro plan (aimon_otel.set_plan), no restart")
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        except aimon_otel.BudgetExceeded as refused:
            print(f"budget refused call {number}: {refused}")
            continue
        print(f"budget trial call {number}: sent")


def prepaid_tenant(client: OpenAI) -> None:
    """A tenant that buys a credit pack: calls draw it down, then a web app would answer 402."""
    from aimon_otel.middleware import too_many_requests

    pack = aimon_otel.add_credits("prepaid-credits", key="prepaid", usd="0.0001", reference="pay_demo_1")
    print(f"credits added: {usd(pack.amount_usd)}, balance {usd(pack.balance_usd)}")
    for number in range(1, 10):
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        except aimon_otel.CreditsExhausted as exhausted:
            status, _, body = too_many_requests(exhausted)
            print(f"credits used up at call {number}: HTTP {status} {body.decode()}")
            return
        balance = aimon_otel.credit_balance("prepaid-credits", key="prepaid")
        print(f"credits call {number}: sent, balance {usd(balance)}")


def bedrock_summary() -> None:
    """Amazon Nova through boto3's bedrock-runtime Converse API (region, endpoint and keys from the AWS environment)."""
    if not (os.environ.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME") or os.environ.get("AWS_ACCESS_KEY_ID")):
        return
    try:
        import boto3
    except ImportError:
        return
    client = boto3.client("bedrock-runtime")
    reply = client.converse(
        modelId="us.amazon.nova-lite-v1:0",
        messages=[{"role": "user", "content": [{"text": "Summarise observability in five words."}]}],
        inferenceConfig={"maxTokens": 100},
    )
    print("bedrock:", reply["output"]["message"]["content"][0]["text"])


def usd(amount: float) -> str:
    return f"-${-amount:.6f}" if amount < 0 else f"${amount:.6f}"


def on_budget_event(event: aimon_otel.BudgetEvent) -> None:
    if event.kind == "blocked":  # refusals are printed where they are caught
        return
    if event.balance is not None:
        print(f"budget {event.kind}: {event.budget} for {event.key}, balance {usd(event.balance)}")
        return
    print(f"budget {event.kind}: {event.budget} at ${event.spent:.6f} of ${event.limit:.6f} ({event.period})")


def main() -> None:
    aimon_otel.on_budget_event(on_budget_event)
    client = OpenAI()  # OPENAI_API_KEY and OPENAI_BASE_URL from the environment
    with aimon_otel.attributes(tenant_id="acme", feature="support_reply", user_id="alice"):
        support_reply(client)
    with aimon_otel.attributes(tenant_id="globex", feature="search"):
        search(client)
    with aimon_otel.attributes(tenant_id="globex", feature="summaries"):
        print("async:", asyncio.run(batch_summaries()))
    with aimon_otel.attributes(tenant_id="acme", feature="email_draft"):
        draft_email()
    with aimon_otel.attributes(tenant_id="acme", feature="research"):
        gemini_agent()
    with aimon_otel.attributes(tenant_id="acme", feature="summaries"):
        bedrock_summary()
    with aimon_otel.attributes(tenant_id="initech", feature="custom_model"):
        client.chat.completions.create(model="initech-finetune-v2", messages=MESSAGES)  # no price known
    with aimon_otel.attributes(tenant_id="trial", feature="support_reply"):
        trial_tenant(client)
    with aimon_otel.attributes(tenant_id="prepaid", feature="support_reply"):
        prepaid_tenant(client)

    if os.environ.get("AIMON_DEMO_FAKE_PROVIDER"):  # show a failed call against the fake provider
        try:
            client.with_options(max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-fake-scenario": "error-429"}
            )
        except openai.RateLimitError as exc:
            print("rate limited:", exc.status_code)


if __name__ == "__main__":
    main()

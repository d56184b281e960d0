"""OpenAI image generation and edits over real HTTP: gpt-image-* priced by tokens, DALL·E per image.

gpt-image-1 (genai-prices 0.2.3, USD per million tokens): text input 5, image input 10, output 40.
A generation: 10 text tokens in, 4,160 image tokens out: 10 x 5 + 4,160 x 40 = 166,450 per million
= $0.16645. An edit adds the input image's 40 image tokens: + 40 x 10 = $0.16685.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import openai
import pytest

from aimon_otel.config import AimonConfigError
from aimon_otel.pricing import load_overrides
from aimon_otel.testing import FakeProvider
from tests.conftest import API_KEY, Telemetry, make_telemetry

GENERATION = (10 * 5 + 4160 * 40) / 1e6
EDIT = (10 * 5 + 40 * 10 + 4160 * 40) / 1e6
DALL_E_PRICES = """\
images:
  - model: dall-e-3
    provider: openai
    prices:
      - {size: 1024x1024, quality: standard, usd_per_image: 0.04}
      - {size: 1024x1024, quality: hd, usd_per_image: 0.08}
      - {size: 1792x1024, usd_per_image: 0.08}
"""
needs_images = pytest.mark.skipif(not hasattr(openai.OpenAI(api_key="x").images, "edit"), reason="no images API")


def png() -> io.BytesIO:
    image = io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    image.name = "cat.png"
    return image


def test_gpt_image_generation_is_priced_by_its_tokens(telemetry: Telemetry, client: openai.OpenAI) -> None:
    result = client.images.generate(model="gpt-image-1", prompt="a cat", size="1024x1024")
    assert result.data[0].b64_json == "AAAA"
    span = telemetry.span()
    a = span.attributes
    assert span.name == "generate_content gpt-image-1"
    assert (a["gen_ai.operation.name"], a["gen_ai.output.type"], a["aimon.image.size"]) == (
        "generate_content",
        "image",
        "1024x1024",
    )
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"], a["aimon.image.count"]) == (10, 4160, 1)
    assert a["gen_ai.usage.cost"] == pytest.approx(GENERATION, abs=1e-12)
    (cost,) = telemetry.points("gen_ai.usage.cost")
    assert cost.sum == pytest.approx(GENERATION, abs=1e-12)


def test_an_edit_prices_the_input_images_tokens_apart(telemetry: Telemetry, client: openai.OpenAI) -> None:
    client.images.edit(model="gpt-image-1", image=png(), prompt="add a hat")
    a = telemetry.span().attributes
    assert a["gen_ai.usage.input_tokens"] == 50  # 10 text + 40 image
    assert a["gen_ai.usage.cost"] == pytest.approx(EDIT, abs=1e-12)


def test_async_generation_and_edit(telemetry: Telemetry, fake: FakeProvider) -> None:
    async def calls() -> None:
        made = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
        await made.images.generate(model="gpt-image-1", prompt="a cat")
        await made.images.edit(model="gpt-image-1", image=png(), prompt="add a hat")

    asyncio.run(calls())
    costs = [s.attributes["gen_ai.usage.cost"] for s in telemetry.spans()]
    assert costs == [pytest.approx(GENERATION, abs=1e-12), pytest.approx(EDIT, abs=1e-12)]


def test_a_streamed_generation_takes_the_completed_events_usage(telemetry: Telemetry, client: openai.OpenAI) -> None:
    try:
        stream = client.images.generate(model="gpt-image-1", prompt="a cat", stream=True, partial_images=1)
    except TypeError:
        pytest.skip("this openai SDK cannot stream images")
    kinds = [event.type for event in stream]
    assert kinds == ["image_generation.partial_image", "image_generation.completed"]
    a = telemetry.span().attributes
    assert a["aimon.stream.outcome"] == "completed" and a["aimon.image.count"] == 1
    assert a["gen_ai.usage.cost"] == pytest.approx(GENERATION, abs=1e-12)


def test_dall_e_is_unknown_model_without_a_per_image_price(telemetry: Telemetry, client: openai.OpenAI) -> None:
    client.images.generate(model="dall-e-3", prompt="a cat", n=1, size="1024x1024")
    a = telemetry.span().attributes
    assert a["aimon.pricing.status"] == "unknown_model" and "gen_ai.usage.cost" not in a  # never $0
    (unpriced,) = telemetry.points("aimon.pricing.unpriced_calls")
    assert unpriced.attributes["gen_ai.request.model"] == "dall-e-3"


def test_dall_e_per_image_by_size_and_quality_from_the_override_file(tmp_path: Path, client: openai.OpenAI) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(DALL_E_PRICES)
    telemetry = make_telemetry(pricing_file=str(prices))
    try:
        client.images.generate(model="dall-e-3", prompt="a cat", n=2, size="1024x1024", quality="standard")
        client.images.generate(model="dall-e-3", prompt="a cat", n=1, size="1024x1024", quality="hd")
        client.images.generate(model="dall-e-3", prompt="a cat", n=3, size="1792x1024", quality="hd")  # any quality
        client.images.generate(model="dall-e-3", prompt="a cat", size="512x512")  # not priced at this size
    finally:
        telemetry.instrumentor.uninstrument()
    spans = telemetry.spans()
    assert [s.attributes.get("gen_ai.usage.cost") for s in spans[:3]] == [
        pytest.approx(0.08),
        pytest.approx(0.08),
        pytest.approx(0.24),
    ]
    assert spans[3].attributes["aimon.pricing.status"] == "unknown_model"
    assert [s.attributes["aimon.image.count"] for s in spans] == [2, 1, 3, 1]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{model: dall-e-3, prices: [{size: 1024x1024}]}", r"images\[0\]\.prices\[0\]: missing \['usd_per_image'\]"),
        ("{model: dall-e-3, prices: [{usd_per_image: -1}]}", r"usd_per_image must be between 0 and 100"),
        ("{model: dall-e-3, prices: [{usd_per_image: 0.04, colour: red}]}", r"unknown key\(s\) \['colour'\]"),
        (
            "{model: dall-e-3, prices: [{size: 1024x1024, usd_per_image: 0.04}, "
            "{size: 1024x1024, usd_per_image: 0.05}]}",
            "priced twice",
        ),
        ("{model: dall-e-3, prices: []}", "'prices' must be a list"),
    ],
)
def test_a_bad_image_price_names_the_entry_and_the_fix(tmp_path: Path, entry: str, message: str) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(f"images:\n  - {entry}\n")
    with pytest.raises(AimonConfigError, match=message) as raised:
        load_overrides(prices)
    assert str(prices) in str(raised.value)

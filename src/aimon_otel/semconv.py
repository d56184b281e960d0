"""Every telemetry name aimon-otel emits, in one place.

Names follow the OpenTelemetry GenAI semantic conventions (experimental) where they
name a thing; ``aimon.*`` names cover what they do not. See ``shared/DESIGN.md``.
"""

from __future__ import annotations

from typing import Final

# --- span attributes: GenAI semantic conventions -------------------------------------
OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_STREAM: Final = "gen_ai.request.stream"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
REQUEST_TOP_P: Final = "gen_ai.request.top_p"
REQUEST_SEED: Final = "gen_ai.request.seed"
REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
REQUEST_TOP_K: Final = "gen_ai.request.top_k"
REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
REQUEST_SERVICE_TIER: Final = "gen_ai.openai.request.service_tier"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_ID: Final = "gen_ai.response.id"
RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
RESPONSE_SERVICE_TIER: Final = "gen_ai.openai.response.service_tier"
RESPONSE_SYSTEM_FINGERPRINT: Final = "openai.response.system_fingerprint"
RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
# DESIGN.md called this ``gen_ai.usage.cache_write.input_tokens``; the conventions have
# since named it ``cache_creation``, and the contract defers to the conventions.
USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
TOKEN_TYPE: Final = "gen_ai.token.type"
EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"

# --- attribution (span and metric attributes) --------------------------------------------
TENANT_ID: Final = "tenant.id"
USER_ID: Final = "user.id"
FEATURE: Final = "aimon.feature"

# --- cost ---------------------------------------------------------------------------------
USAGE_COST: Final = "gen_ai.usage.cost"
"""The call's total cost in USD (float). Absent when the call cannot be priced."""
COST_INPUT: Final = "aimon.cost.input"
COST_OUTPUT: Final = "aimon.cost.output"
COST_CACHE_READ: Final = "aimon.cost.cache_read"
COST_CACHE_WRITE: Final = "aimon.cost.cache_write"
COST_REQUESTS: Final = "aimon.cost.requests"
"""USD of per-request fees: a flat fee per call, server-side tools such as web search (present when above 0)."""
COST_CACHE_SAVINGS: Final = "aimon.cost.cache_savings"
"""USD prompt caching saved on this call (present when above 0)."""
COST_SOURCE: Final = "aimon.cost.source"
PRICING_STATUS: Final = "aimon.pricing.status"
PRICING_MODEL: Final = "aimon.pricing.model"

# --- span attributes: aimon-otel's own ------------------------------------------------
STREAM_OUTCOME: Final = "aimon.stream.outcome"
"""How a streamed call ended: ``completed``, ``closed``, ``abandoned`` or ``error``."""

# --- values -----------------------------------------------------------------------------
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EMBEDDINGS: Final = "embeddings"

TOKEN_INPUT: Final = "input"
TOKEN_OUTPUT: Final = "output"
# ``aimon.token.type`` on ``aimon.usage.tokens``: parts of input or output priced apart.
AIMON_TOKEN_TYPE: Final = "aimon.token.type"
TOKEN_CACHE_READ: Final = "cache_read"
TOKEN_CACHE_WRITE: Final = "cache_write"
TOKEN_REASONING: Final = "reasoning"

STREAM_COMPLETED: Final = "completed"
STREAM_CLOSED: Final = "closed"
STREAM_ABANDONED: Final = "abandoned"
STREAM_ERROR: Final = "error"

# --- metrics ----------------------------------------------------------------------------
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
METRIC_COST: Final = "gen_ai.usage.cost"
METRIC_UNPRICED_CALLS: Final = "aimon.pricing.unpriced_calls"
METRIC_CACHE_SAVINGS: Final = "aimon.cost.cache_savings"
METRIC_USAGE_TOKENS: Final = "aimon.usage.tokens"

# Bucket boundaries advised by the GenAI metric conventions.
TOKEN_BUCKETS: Final = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
DURATION_BUCKETS: Final = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)

# USD, from a millionth of a dollar to $100 per call, 1-2.5-5 per decade.
COST_BUCKETS: Final = (
    *(float(f"{mantissa}e{exponent}") for exponent in range(-6, 2) for mantissa in (1, 2.5, 5)),
    100.0,
)

INSTRUMENTATION_SCOPE: Final = "aimon_otel"

"""Every telemetry name aimon-otel emits, in one place.

Names follow the OpenTelemetry GenAI semantic conventions (experimental) where they name a
thing, imported from ``opentelemetry-semantic-conventions`` where our floor of that package
defines them; ``aimon.*`` names cover what the conventions do not. See ``docs/design.md``.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import server_attributes as _server

# --- span attributes: from opentelemetry-semantic-conventions --------------------------
OPERATION_NAME: Final = _gen_ai.GEN_AI_OPERATION_NAME
REQUEST_MODEL: Final = _gen_ai.GEN_AI_REQUEST_MODEL
REQUEST_MAX_TOKENS: Final = _gen_ai.GEN_AI_REQUEST_MAX_TOKENS
REQUEST_TEMPERATURE: Final = _gen_ai.GEN_AI_REQUEST_TEMPERATURE
REQUEST_TOP_P: Final = _gen_ai.GEN_AI_REQUEST_TOP_P
REQUEST_TOP_K: Final = _gen_ai.GEN_AI_REQUEST_TOP_K
REQUEST_SEED: Final = _gen_ai.GEN_AI_REQUEST_SEED
REQUEST_CHOICE_COUNT: Final = _gen_ai.GEN_AI_REQUEST_CHOICE_COUNT
REQUEST_FREQUENCY_PENALTY: Final = _gen_ai.GEN_AI_REQUEST_FREQUENCY_PENALTY
REQUEST_PRESENCE_PENALTY: Final = _gen_ai.GEN_AI_REQUEST_PRESENCE_PENALTY
REQUEST_STOP_SEQUENCES: Final = _gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES
RESPONSE_MODEL: Final = _gen_ai.GEN_AI_RESPONSE_MODEL
RESPONSE_ID: Final = _gen_ai.GEN_AI_RESPONSE_ID
RESPONSE_FINISH_REASONS: Final = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
USAGE_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
USAGE_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
TOKEN_TYPE: Final = _gen_ai.GEN_AI_TOKEN_TYPE
SERVER_ADDRESS: Final = _server.SERVER_ADDRESS
SERVER_PORT: Final = _server.SERVER_PORT
ERROR_TYPE: Final = _error.ERROR_TYPE

# --- span attributes: the conventions name them, our floor of the package (0.55b0) does not yet --------
# ``tests/test_semconv.py`` checks each against the installed package wherever it defines them.
PROVIDER_NAME: Final = "gen_ai.provider.name"
REQUEST_STREAM: Final = "gen_ai.request.stream"
RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"
# The current names (the ``gen_ai.openai.*`` ones are deprecated).
REQUEST_SERVICE_TIER: Final = "openai.request.service_tier"
RESPONSE_SERVICE_TIER: Final = "openai.response.service_tier"
RESPONSE_SYSTEM_FINGERPRINT: Final = "openai.response.system_fingerprint"

# --- attribution (span and metric attributes) --------------------------------------------
TENANT_ID: Final = "tenant.id"
USER_ID: Final = "user.id"
FEATURE: Final = "aimon.feature"
AGENT_NAME: Final = _gen_ai.GEN_AI_AGENT_NAME
"""On spans and metrics (bounded: a handful of agents)."""
CONVERSATION_ID: Final = _gen_ai.GEN_AI_CONVERSATION_ID
"""On spans only: one value per conversation, unbounded."""
API_KEY_ID: Final = "aimon.api_key.id"
"""A fingerprint of the API key a call used (``AIMON_KEY_SALT``), on spans and metrics; never the key."""

# --- budgets ------------------------------------------------------------------------------
BUDGET_NAME: Final = "aimon.budget.name"
"""On a refused call's span (with ``error.type`` = :data:`BUDGET_EXCEEDED`) and on the budget gauges."""
BUDGET_KEY: Final = "aimon.budget.key"
"""The ``for_each`` value a budget counts (tenant, user...), empty for a budget without one."""
BUDGET_PERIOD: Final = "aimon.budget.period"
BUDGET_UNIT: Final = "aimon.budget.unit"
"""``USD`` or ``token``: what a budget's gauges count."""
BUDGET_EXCEEDED: Final = "aimon.budget_exceeded"
METRIC_BUDGET_SPENT: Final = "aimon.budget.spent"
METRIC_BUDGET_LIMIT: Final = "aimon.budget.limit"
METRIC_BUDGET_RESETS_AT: Final = "aimon.budget.resets_at"
METRIC_BUDGET_BALANCE: Final = "aimon.budget.balance"
BUDGET_LIMIT_SOURCE: Final = "aimon.budget.limit_source"
"""On ``aimon.budget.limit``: ``file``, ``plan <name>`` or ``set`` (a per-key limit)."""

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
PRICING_PROVIDER: Final = "aimon.pricing.provider"
"""genai-prices' provider id of a price (``openai``, ``aws``...), on price-change notices."""
PRICING_SOURCE: Final = "aimon.pricing.source"
"""On the price data gauge: ``genai-prices`` or ``override``."""
PRICING_VERSION: Final = "aimon.pricing.version"
"""On the price data gauge: the genai-prices version or the override file."""

# --- images ---------------------------------------------------------------------------------
OUTPUT_TYPE: Final = "gen_ai.output.type"
IMAGE_SIZE: Final = "aimon.image.size"
IMAGE_QUALITY: Final = "aimon.image.quality"
IMAGE_COUNT: Final = "aimon.image.count"
"""Images an image call produced."""

# --- span attributes: aimon-otel's own ------------------------------------------------
STREAM_OUTCOME: Final = "aimon.stream.outcome"
"""How a streamed call ended: ``completed``, ``closed``, ``abandoned`` or ``error``."""

# --- values -----------------------------------------------------------------------------
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EMBEDDINGS: Final = "embeddings"
OP_COUNT_TOKENS: Final = "count_tokens"
"""Token counting: a span and a duration, no cost."""
OP_GENERATE_CONTENT: Final = "generate_content"
"""Image generation (the conventions' operation for multimodal output)."""

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
METRIC_TOKEN_USAGE: Final = _gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
METRIC_OPERATION_DURATION: Final = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"  # not in the 0.55b0 package
METRIC_COST: Final = "gen_ai.usage.cost"
METRIC_UNPRICED_CALLS: Final = "aimon.pricing.unpriced_calls"
METRIC_CACHE_SAVINGS: Final = "aimon.cost.cache_savings"
METRIC_USAGE_TOKENS: Final = "aimon.usage.tokens"
METRIC_PRICING_DATA_TIMESTAMP: Final = "aimon.pricing.data.timestamp"
"""When the prices in use were known current, Unix seconds (Prometheus: ``aimon_pricing_data_timestamp_seconds``)."""

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

"""Keep API keys out of telemetry text such as error messages.

Providers sometimes echo part of a key in an error ("Incorrect API key provided: sk-...").
Everything we copy from an exception message passes through here first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_KEY_PATTERNS = re.compile(
    r"(?:sk-[A-Za-z0-9_\-*]{6,}|Bearer\s+[A-Za-z0-9_\-.*=]+|AIza[0-9A-Za-z_\-]{10,}|gsk_[A-Za-z0-9]{8,}|xai-[A-Za-z0-9]{8,})"
)
REDACTED = "[REDACTED]"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Replace the given secrets and anything shaped like an API key."""
    for secret in secrets:
        if secret and len(secret) >= 6 and secret in text:
            text = text.replace(secret, REDACTED)
    return _KEY_PATTERNS.sub(REDACTED, text)

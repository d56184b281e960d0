"""The error a bad setting raises, in a module of its own: every part that reads settings (pricing, budgets,
billing) imports it without importing ``config``, which imports billing's settings in turn."""


class AimonConfigError(ValueError):
    """A setting has a value aimon-otel cannot use; the message says which and how to fix it."""

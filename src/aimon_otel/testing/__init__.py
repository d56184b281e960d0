"""Test helpers shipped with aimon-otel: a fake LLM provider that speaks the real wire formats."""

from aimon_otel.testing.fake_provider import FakeProvider

__all__ = ["FakeProvider"]

"""Test doubles: a fake LLM provider speaking the real OpenAI / Azure / Anthropic / Gemini wire formats."""

from .provider import FakeProvider, ReceivedRequest, UploadedFile

__all__ = ["FakeProvider", "ReceivedRequest", "UploadedFile"]

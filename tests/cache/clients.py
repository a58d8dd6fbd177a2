"""One call through an official SDK in each client format, plain or streamed: what the user sees."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.harness import MASTER_KEY, Tollway, anthropic_client, gemini_client, openai_client

FORMATS = ("openai_chat", "responses", "anthropic", "gemini")
MODELS = {"openai_chat": "gpt-4o-mini", "responses": "gpt-4o-mini", "anthropic": "claude-haiku-4-5",
          "gemini": "gemini-2.0-flash"}


class BrokenStream(Exception):
    """The stream ended without its success terminator (the SDK itself raised nothing)."""


@dataclass
class Answer:
    text: str
    headers: dict[str, str]  # lower-case names
    id: str | None
    input_tokens: int | None
    output_tokens: int | None

    @property
    def cache(self) -> str | None:
        return self.headers.get("x-tollway-cache")

    @property
    def trace(self) -> str:
        return self.headers["x-tollway-trace-id"]


def _h(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in dict(headers).items()}


def ask(tw: Tollway, fmt: str, prompt: str, *, stream: bool = False, model: str | None = None,
        key: str = MASTER_KEY, headers: dict[str, str] | None = None, **params: Any) -> Answer:
    model = model or MODELS[fmt]
    extra = {"extra_headers": headers} if headers else {}
    if fmt == "openai_chat":
        c = openai_client(tw, key)
        msgs = [{"role": "user", "content": prompt}]
        if stream:
            with c.chat.completions.with_streaming_response.create(
                    model=model, messages=msgs, stream=True, stream_options={"include_usage": True},
                    **params, **extra) as raw:
                chunks = list(raw.parse())
                hdrs = _h(raw.headers)
            usage = next((ch.usage for ch in chunks if ch.usage), None)
            text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
            return Answer(text, hdrs, chunks[0].id, usage and usage.prompt_tokens, usage and usage.completion_tokens)
        raw = c.chat.completions.with_raw_response.create(model=model, messages=msgs, **params, **extra)
        r = raw.parse()
        return Answer(r.choices[0].message.content or "", _h(raw.headers), r.id, r.usage.prompt_tokens,
                      r.usage.completion_tokens)
    if fmt == "responses":
        c = openai_client(tw, key)
        params.setdefault("store", False)
        if stream:
            with c.responses.with_streaming_response.create(model=model, input=prompt, stream=True, **params,
                                                            **extra) as raw:
                events = list(raw.parse())
                hdrs = _h(raw.headers)
            done = next((e.response for e in events if e.type == "response.completed"), None)
            if done is None:
                raise BrokenStream([e.type for e in events][-3:])
            text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
            assert text == done.output_text
            return Answer(text, hdrs, done.id, done.usage.input_tokens, done.usage.output_tokens)
        raw = c.responses.with_raw_response.create(model=model, input=prompt, **params, **extra)
        r = raw.parse()
        return Answer(r.output_text, _h(raw.headers), r.id, r.usage.input_tokens, r.usage.output_tokens)
    if fmt == "anthropic":
        c = anthropic_client(tw, key)
        msgs = [{"role": "user", "content": prompt}]
        params.setdefault("max_tokens", 100)
        if stream:
            with c.messages.with_streaming_response.create(model=model, messages=msgs, stream=True, **params,
                                                           **extra) as raw:
                events = list(raw.parse())
                hdrs = _h(raw.headers)
            start = next(e.message for e in events if e.type == "message_start")
            text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
            out = next(e.usage.output_tokens for e in events if e.type == "message_delta")
            if events[-1].type != "message_stop":
                raise BrokenStream(events[-1].type)
            return Answer(text, hdrs, start.id, start.usage.input_tokens, out)
        raw = c.messages.with_raw_response.create(model=model, messages=msgs, **params, **extra)
        r = raw.parse()
        return Answer("".join(b.text for b in r.content if b.type == "text"), _h(raw.headers), r.id,
                      r.usage.input_tokens, r.usage.output_tokens)
    if fmt == "gemini":
        from google.genai import types as gtypes

        c = gemini_client(tw, key)
        config = gtypes.GenerateContentConfig(http_options=gtypes.HttpOptions(headers=headers or {}), **params)
        if stream:
            chunks = list(c.models.generate_content_stream(model=model, contents=prompt, config=config))
            last = chunks[-1]
            return Answer("".join(ch.text or "" for ch in chunks), _h(chunks[0].sdk_http_response.headers),
                          last.response_id, last.usage_metadata.prompt_token_count,
                          last.usage_metadata.candidates_token_count)
        r = c.models.generate_content(model=model, contents=prompt, config=config)
        return Answer(r.text or "", _h(r.sdk_http_response.headers), r.response_id,
                      r.usage_metadata.prompt_token_count, r.usage_metadata.candidates_token_count)
    raise ValueError(fmt)

"""Output checks on the model's reasoning, end to end, through the official SDKs.

The fake's `[[leak_thinking]]` makes the model reason about a FAKE AWS key (split mid-key
across stream deltas) and answer cleanly, so every finding comes from the reasoning: Anthropic
thinking blocks, Gemini thought parts, Responses reasoning summaries (from Anthropic thinking)
and Chat `reasoning_content` (from an OpenAI-compatible server). The master key redacts;
`tw-log-key` and `tw-block-key` choose `log` and `block`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import anthropic
import openai
import pytest
from google.genai import errors as gerrors
from google.genai import types as gtypes

from tests.fakes.gemini_wire import THOUGHT_SIGNATURE
from tests.fakes.provider import FakeProvider
from tests.fakes.scenario import LEAKED_KEY, REPLY_TEXT, THINKING_LEAK_PIECES
from tests.harness import MASTER_KEY, Tollway, anthropic_client, gemini_client, openai_client, standard_config

CLAUDE, GEMINI, LOCAL = "claude-3-5-haiku-latest", "gemini-2.5-flash", "qwen3-local"
PROMPT = "Think it over. [[leak_thinking]]"
REDACTED = "".join(THINKING_LEAK_PIECES).replace(LEAKED_KEY, "[REDACTED:AWS_ACCESS_KEY]")
KEYS = {"log": "tw-log-key", "block": "tw-block-key"}
FOUND = {"AWS_ACCESS_KEY": 1}


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = standard_config(fake.url)
    cfg["providers"] += [
        {"id": "google", "kind": "gemini", "base_url": fake.url, "api_key": "gemini-key", "models": ["gemini-*"]},
        {"id": "vllm", "kind": "openai_compatible", "base_url": fake.local_url + "/v1", "models": [LOCAL],
         "discover_models": False},
    ]
    cfg["sanitization"] = {"enabled": True, "output": "redact"}
    cfg["keys"] = [{"id": mode, "key": key, "sanitization": {"output": mode}} for mode, key in KEYS.items()]
    t = Tollway(tmp_path_factory.mktemp("guard-reasoning"), cfg)
    yield t
    t.stop()


@dataclass
class Seen:
    """What a client got: the reasoning text, the answer text, the trace, and format extras."""

    trace: str = ""
    reasoning: str = ""
    answer: str = ""
    signature: str | None = None  # Anthropic thinking signature / Responses encrypted_content


# -- one call per client format, non-stream and stream --------------------------------------------
def anthropic_call(tw: Tollway, key: str, stream: bool, seen: Seen) -> Seen:
    """Fills `seen` as the answer arrives (what a blocked stream let through stays in it)."""
    kw = dict(model=CLAUDE, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
              messages=[{"role": "user", "content": PROMPT}])
    client = anthropic_client(tw, key)
    if not stream:
        raw = client.messages.with_raw_response.create(**kw)
        msg = raw.parse()
        th = [b for b in msg.content if b.type == "thinking"]
        assert len(th) == 1
        seen.trace, seen.reasoning, seen.signature = raw.headers["x-tollway-trace-id"], th[0].thinking, th[0].signature
        seen.answer = "".join(b.text for b in msg.content if b.type == "text")
        return seen
    with client.messages.with_streaming_response.create(stream=True, **kw) as raw:
        seen.trace = raw.headers["x-tollway-trace-id"]
        for ev in raw.parse():
            if ev.type == "content_block_start" and ev.content_block.type == "thinking":
                seen.signature = ev.content_block.signature
            elif ev.type == "content_block_delta" and ev.delta.type == "thinking_delta":
                seen.reasoning += ev.delta.thinking
            elif ev.type == "content_block_delta" and ev.delta.type == "signature_delta":
                seen.signature = ev.delta.signature
            elif ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                seen.answer += ev.delta.text
    return seen


def responses_call(tw: Tollway, key: str, stream: bool, seen: Seen) -> Seen:
    kw = dict(model=CLAUDE, input=PROMPT, reasoning={"effort": "low", "summary": "auto"},
              include=["reasoning.encrypted_content"])
    client = openai_client(tw, key)
    if not stream:
        raw = client.responses.with_raw_response.create(**kw)
        resp = raw.parse()
        items = [it for it in resp.output if it.type == "reasoning"]
        assert len(items) == 1
        seen.trace, seen.answer = raw.headers["x-tollway-trace-id"], resp.output_text
        seen.reasoning, seen.signature = "".join(s.text for s in items[0].summary), items[0].encrypted_content
        return seen
    with client.responses.with_streaming_response.create(stream=True, **kw) as raw:
        seen.trace = raw.headers["x-tollway-trace-id"]
        for ev in raw.parse():
            if ev.type == "response.reasoning_summary_text.delta":
                seen.reasoning += ev.delta
            elif ev.type == "response.output_text.delta":
                seen.answer += ev.delta
            elif ev.type == "response.completed":
                seen.signature = next(it.encrypted_content for it in ev.response.output if it.type == "reasoning")
            elif ev.type in ("error", "response.failed"):
                raise openai.APIError("stream failed", request=None, body=None)  # type: ignore[arg-type]
    return seen


def gemini_call(tw: Tollway, key: str, stream: bool, seen: Seen) -> Seen:
    client = gemini_client(tw, key, api_version="v1beta")
    config = gtypes.GenerateContentConfig(thinking_config=gtypes.ThinkingConfig(include_thoughts=True))
    chunks = ([client.models.generate_content(model=GEMINI, contents=PROMPT, config=config)] if not stream else
              client.models.generate_content_stream(model=GEMINI, contents=PROMPT, config=config))
    for c in chunks:
        seen.trace = seen.trace or c.sdk_http_response.headers["x-tollway-trace-id"]
        for p in (c.candidates[0].content.parts if c.candidates and c.candidates[0].content else None) or ():
            if p.thought:
                seen.reasoning += p.text or ""
                seen.signature = seen.signature or (p.thought_signature and p.thought_signature.hex())
            else:
                seen.answer += p.text or ""
    return seen


def chat_call(tw: Tollway, key: str, stream: bool, seen: Seen) -> Seen:
    client = openai_client(tw, key)
    kw = dict(model=LOCAL, messages=[{"role": "user", "content": PROMPT}])
    if not stream:
        raw = client.chat.completions.with_raw_response.create(**kw)
        msg = raw.parse().choices[0].message
        seen.trace, seen.answer = raw.headers["x-tollway-trace-id"], msg.content or ""
        seen.reasoning = (msg.model_extra or {}).get("reasoning_content") or ""
        return seen
    with client.chat.completions.with_streaming_response.create(stream=True, **kw) as raw:
        seen.trace = raw.headers["x-tollway-trace-id"]
        for chunk in raw.parse():
            if chunk.choices:
                delta = chunk.choices[0].delta
                seen.reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
                seen.answer += delta.content or ""
    return seen


CALLS: dict[str, Callable[[Tollway, str, bool, Seen], Seen]] = {
    "anthropic": anthropic_call, "responses": responses_call, "gemini": gemini_call, "chat": chat_call}
CASES = [(fmt, stream) for fmt in sorted(CALLS) for stream in (False, True)]
IDS = [f"{fmt}-{'stream' if stream else 'whole'}" for fmt, stream in CASES]


def assert_nothing_kept(tw: Tollway, trace: str) -> dict:
    rec = tw.record(trace)
    assert LEAKED_KEY not in json.dumps(rec) and LEAKED_KEY not in tw.log()
    return rec


# -- redact -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "stream"), CASES, ids=IDS)
def test_a_secret_in_the_reasoning_is_redacted_even_split_across_chunks(tw: Tollway, fmt: str, stream: bool) -> None:
    seen = CALLS[fmt](tw, MASTER_KEY, stream, Seen())
    assert seen.reasoning == REDACTED and seen.answer == REPLY_TEXT
    rec = assert_nothing_kept(tw, seen.trace)
    assert rec["guard_findings"] == {"response": FOUND, "response_action": "redacted"}
    assert rec["status"] == 200 and rec["error_type"] is None
    if fmt in ("anthropic", "responses"):  # Anthropic's signature covered the text: it is dropped
        assert not seen.signature
    elif fmt == "gemini":  # Gemini's is not checked against the thought text: it is kept, on the last part
        assert seen.signature == base64.b64decode(THOUGHT_SIGNATURE).hex()


def test_clean_thinking_keeps_its_signature(tw: Tollway) -> None:
    msg = anthropic_client(tw).messages.create(
        model=CLAUDE, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "[[thinking]]"}])
    assert msg.content[0].type == "thinking" and msg.content[0].signature.startswith("EqQB")


def test_a_redacted_thinking_block_sent_back_is_left_out_not_refused(tw: Tollway, fake: FakeProvider) -> None:
    """The unsigned, redacted block goes back in the next turn: Tollway leaves it out of the
    request to Anthropic (which would refuse text its signature does not cover)."""
    client = anthropic_client(tw)
    first = client.messages.create(model=CLAUDE, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                                   messages=[{"role": "user", "content": PROMPT}])
    assert first.content[0].thinking == REDACTED and first.content[0].signature == ""
    n = len(fake.requests)
    again = client.messages.create(
        model=CLAUDE, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": PROMPT},
                  {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                  {"role": "user", "content": "Thanks."}])
    assert again.content
    sent = fake.wait_for_requests(n + 1)[n].json
    assistant = sent["messages"][1]["content"]
    assert [b["type"] for b in assistant] == ["text"] and "REDACTED" not in json.dumps(sent)


# -- log --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "stream"), CASES, ids=IDS)
def test_log_passes_the_reasoning_and_records_the_finding(tw: Tollway, fmt: str, stream: bool) -> None:
    seen = CALLS[fmt](tw, KEYS["log"], stream, Seen())
    assert seen.reasoning == "".join(THINKING_LEAK_PIECES) and seen.answer == REPLY_TEXT
    rec = tw.record(seen.trace)
    assert rec["guard_findings"] == {"response": FOUND, "response_action": "logged"}
    assert LEAKED_KEY not in json.dumps(rec) and LEAKED_KEY not in tw.log()
    if fmt == "anthropic":  # log changes nothing: the signature stays
        assert seen.signature


# -- block ------------------------------------------------------------------------------------------
ERRORS = {"anthropic": anthropic.APIError, "responses": openai.APIError, "chat": openai.APIError,
          "gemini": gerrors.APIError}


@pytest.mark.parametrize(("fmt", "stream"), CASES, ids=IDS)
def test_block_stops_the_answer_on_a_finding_in_the_reasoning(tw: Tollway, fmt: str, stream: bool) -> None:
    seen = Seen()
    with pytest.raises(ERRORS[fmt]) as ei:
        CALLS[fmt](tw, KEYS["block"], stream, seen)
    assert LEAKED_KEY not in str(ei.value)
    assert "AKIA" not in seen.reasoning and seen.answer == ""  # nothing of the key, nor the answer after it
    if not stream:
        status = ei.value.code if fmt == "gemini" else ei.value.status_code  # type: ignore[union-attr]
        assert status == 403 and "AWS_ACCESS_KEY" in str(ei.value)
    rec = tw.records(key_id="block", limit=1)[0]
    assert rec["error_type"] == "output_blocked"
    assert rec["guard_findings"] == {"response": FOUND, "response_action": "blocked"}
    assert LEAKED_KEY not in tw.log()


def test_reasoning_a_format_does_not_show_is_checked_all_the_same(tw: Tollway) -> None:
    """Anthropic thinking asked through Chat Completions: the client gets no reasoning field,
    and the answer gets the same verdict and record as in any other format."""
    kw = dict(model=CLAUDE, reasoning_effort="low", messages=[{"role": "user", "content": PROMPT}])
    raw = openai_client(tw, KEYS["log"]).chat.completions.with_raw_response.create(**kw)
    msg = raw.parse().choices[0].message
    assert msg.content == REPLY_TEXT and "reasoning_content" not in (msg.model_extra or {})
    assert tw.record(raw.headers["x-tollway-trace-id"])["guard_findings"] == {"response": FOUND,
                                                                           "response_action": "logged"}
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(tw, KEYS["block"]).chat.completions.create(**kw)

"""Token counts from JSON Tollway does not control are checked where Usage is built.

Negative, fractional, string, bool or absurd counts are refused and named in the record's
cost_note; the record is always written, and the refused part is counted locally when it can be.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import Tollway
from tollway.formats.anthropic import usage_to_canonical as anthropic_usage
from tollway.formats.gemini import usage_to_canonical as gemini_usage
from tollway.formats.openai_chat import usage_to_canonical as openai_usage
from tollway.usage import MAX_TOKENS, CountReader

BAD_VALUES: list[Any] = ["21", -5, 2.5, True, 10**9, [3], {"n": 1}, float("nan"), 2**70]


@pytest.mark.parametrize("bad", BAD_VALUES, ids=repr)
def test_every_parser_refuses_a_bad_count_and_says_so(bad: Any) -> None:
    for usage in (
        openai_usage({"prompt_tokens": bad, "completion_tokens": 7, "total_tokens": 28}),
        openai_usage({"input_tokens": bad, "output_tokens": 7}),
        anthropic_usage({"input_tokens": bad, "output_tokens": 7}),
        gemini_usage({"promptTokenCount": bad, "candidatesTokenCount": 7}),
    ):
        assert usage.input_tokens is None and usage.output_tokens == 7
        assert usage.note is not None and "not used" in usage.note


def test_good_counts_pass_unchanged_and_whole_floats_are_whole_numbers() -> None:
    u = openai_usage({"prompt_tokens": 21.0, "completion_tokens": 7,
                      "prompt_tokens_details": {"cached_tokens": 5}, "completion_tokens_details": {"reasoning_tokens": 2}})
    assert (u.input_tokens, u.output_tokens, u.cached_tokens, u.reasoning_tokens, u.note) == (21, 7, 5, 2, None)
    assert type(u.input_tokens) is int
    assert openai_usage({"prompt_tokens": MAX_TOKENS, "completion_tokens": 0}).input_tokens == MAX_TOKENS


def test_parts_larger_than_the_whole_are_capped_and_noted() -> None:
    u = openai_usage({"prompt_tokens": 10, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 50},
                      "completion_tokens_details": {"reasoning_tokens": 9}})
    assert (u.input_tokens, u.cached_tokens, u.output_tokens, u.reasoning_tokens) == (10, 10, 4, 4)
    assert "capped" in (u.note or "")


def test_a_stream_keeps_what_it_knew_when_a_later_count_is_bad() -> None:
    start = anthropic_usage({"input_tokens": 12, "output_tokens": 1})
    end = anthropic_usage({"output_tokens": "7"}, start)
    assert (end.input_tokens, end.output_tokens) == (12, 1) and "output_tokens='7'" in (end.note or "")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens", "input_tokens",
                                        "output_tokens", "promptTokenCount", "candidatesTokenCount"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=5))))
def test_whatever_a_provider_sends_counts_are_none_or_in_range(u: dict) -> None:
    for usage in (openai_usage(u), anthropic_usage(u), gemini_usage(u)):
        for v in (usage.input_tokens, usage.output_tokens):
            assert v is None or (type(v) is int and 0 <= v <= 2 * MAX_TOKENS)
        for v in (usage.cached_tokens, usage.cache_creation_tokens, usage.reasoning_tokens):
            assert type(v) is int and 0 <= v <= MAX_TOKENS


def test_count_reader_names_each_refused_field() -> None:
    read = CountReader()
    assert read({"a": "1", "b": -1, "c": 3}, "a") is None and read({"b": -1}, "b") is None
    assert read({"c": 3}, "c") == 3 and read.problems == ["a='1'", "b=-1"]


# --- through a running Tollway -------------------------------------------------------------------

def _record(tw: Tollway, headers: Any) -> dict:
    return tw.record(headers["x-tollway-trace-id"])


@pytest.mark.parametrize("bad", ['"21"', "-5", "2.5", "true", "1000000000"])
def test_openai_chat_with_a_bad_prompt_count_is_recorded_estimated(oai: openai.OpenAI, tollway: Tollway,
                                                                     bad: str) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"Hi [[reported_input:{bad}]]"}])
    assert raw.parse().choices[0].message.content == "Hello from the fake provider!"
    rec = _record(tollway, raw.headers)
    assert rec["status"] == 200 and rec["output_tokens"] == 7
    assert isinstance(rec["input_tokens"], int) and 0 < rec["input_tokens"] < 100  # counted locally
    assert rec["tokens_estimated"] is True
    assert "prompt_tokens=" in rec["cost_note"] and "not used" in rec["cost_note"]
    assert rec["cost_usd"] is not None and float(rec["cost_usd"]) < 0.001


def test_openai_stream_with_a_bad_count_keeps_its_record(oai: openai.OpenAI, tollway: Tollway) -> None:
    stream = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": 'Hi [[reported_input:"21"]]'}])
    text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    assert text == "Hello from the fake provider!"
    rec = _record(tollway, stream.headers)
    assert rec["status"] == 200 and rec["output_tokens"] == 7 and rec["input_tokens"] != "21"
    assert "prompt_tokens='21'" in rec["cost_note"]


def test_anthropic_absurd_count_is_not_billed(claude: anthropic.Anthropic, tollway: Tollway) -> None:
    raw = claude.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=50,
        messages=[{"role": "user", "content": "Hi [[reported_input:1000000000]]"}])
    assert raw.parse().content[0].text == "Hello from the fake provider!"
    rec = _record(tollway, raw.headers)
    assert rec["input_tokens"] < 1000 and rec["output_tokens"] == 7
    assert "input_tokens=1000000000" in rec["cost_note"] and float(rec["cost_usd"]) < 0.01


def test_translated_call_with_a_bad_count_is_recorded(oai: openai.OpenAI, tollway: Tollway) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "Hi [[reported_input:-3]]"}])
    assert raw.parse().choices[0].message.content == "Hello from the fake provider!"
    rec = _record(tollway, raw.headers)
    assert rec["status"] == 200 and 0 < rec["input_tokens"] < 100 and rec["tokens_estimated"] is True
    assert "input_tokens=-3" in rec["cost_note"]

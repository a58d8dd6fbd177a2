"""Output checks on canonical stream deltas: a secret split anywhere across chunks is caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.formats.canonical import GEMINI_SIGNATURE_PREFIX, CanonicalResponse, Text, Thinking, ToolCall
from tollway.formats.stream import (
    BlockStop, Finish, TextDelta, ThinkingDelta, ToolCallArgsDelta, ToolCallStart, UsageDelta,
)
from tollway.guard.output import OutputCheck
from tollway.guard.pii import recognizers
from tollway.guard.scanner import Scanner
from tollway.pipeline.content import ContentBlocked
from tollway.usage import Usage

CORPUS = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "guard" / "corpus.json").read_text())
AWS = CORPUS["secrets"]["AWS_ACCESS_KEY"]
PEM = CORPUS["secrets"]["PRIVATE_KEY"]
SCANNER = Scanner(credentials=True, recognizers=recognizers())
TEXT = f"Sure! Use key {AWS} with the CLI, or mail jane.doe@example.com. Here is the key:\n{PEM}\nDone. ✓"


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


def run(check: OutputCheck, chunks: list[str], index: int = 0, args: bool = False) -> list:
    out: list = []
    for c in chunks:
        out += check.feed([ToolCallArgsDelta(index, c) if args else TextDelta(index, c)])
    out += check.feed([BlockStop(index), Finish("end_turn")])
    out += check.close()
    return out


def released(deltas: list) -> str:
    return "".join(d.text if isinstance(d, TextDelta) else d.fragment for d in deltas
                   if isinstance(d, (TextDelta, ToolCallArgsDelta)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_redact_catches_secrets_split_anywhere(cuts: list[int]) -> None:
    check = OutputCheck(SCANNER, "redact")
    out = run(check, split(TEXT, cuts))
    assert released(out) == Scanner.redact(TEXT, SCANNER.scan(TEXT))
    assert AWS not in released(out) and "PRIVATE KEY-----\n" not in released(out)
    assert dict(check.found) == {"AWS_ACCESS_KEY": 1, "EMAIL_ADDRESS": 1, "PRIVATE_KEY": 1}
    kinds = [type(d).__name__ for d in out]
    assert kinds[-2:] == ["BlockStop", "Finish"]  # held-back text is released before the block ends


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_log_passes_the_text_unchanged_and_counts_once(cuts: list[int]) -> None:
    check = OutputCheck(SCANNER, "log")
    assert released(run(check, split(TEXT, cuts))) == TEXT
    assert dict(check.found) == {"AWS_ACCESS_KEY": 1, "EMAIL_ADDRESS": 1, "PRIVATE_KEY": 1}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_block_raises_before_the_secret_is_released(cuts: list[int]) -> None:
    check = OutputCheck(Scanner(credentials=True), "block")
    sent = ""
    with pytest.raises(ContentBlocked) as ei:
        for c in split(TEXT, cuts):
            sent += released(check.feed([TextDelta(0, c)]))
        check.feed([Finish("end_turn")])
    assert check.found["AWS_ACCESS_KEY"] == 1 and "AWS_ACCESS_KEY" in ei.value.message  # the first finding ends it
    assert ei.value.error_type == "output_blocked"
    assert AWS not in sent and AWS[:4] not in sent.split("key ")[-1]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=500), max_size=20))
def test_tool_call_arguments_are_checked_too(cuts: list[int]) -> None:
    args = json.dumps({"command": f"aws configure set aws_access_key_id {AWS}", "region": "eu-west-1"})
    check = OutputCheck(Scanner(credentials=True), "redact")
    out = [*check.feed([ToolCallStart(1, "call_1", "shell")]), *run(check, split(args, cuts), index=1, args=True)]
    got = released(out)
    assert AWS not in got and json.loads(got)["command"].endswith("[REDACTED:AWS_ACCESS_KEY]")


def test_only_the_unfinished_token_is_held_back() -> None:
    check = OutputCheck(SCANNER, "redact")
    assert released(check.feed([TextDelta(0, "Hello there, the key is AKIA")])) == "Hello there, the key is "
    assert released(check.feed([TextDelta(0, AWS[4:] + " and more")])) == "[REDACTED:AWS_ACCESS_KEY] and "
    # usage is not content: it passes and the unfinished token stays held
    out = check.feed([UsageDelta(Usage(input_tokens=1, output_tokens=2))])
    assert [type(d).__name__ for d in out] == ["UsageDelta"]
    # the block's end first flushes what was held, in order
    out = check.feed([BlockStop(0)])
    assert [type(d).__name__ for d in out] == ["TextDelta", "BlockStop"] and out[0].text == "more"


def test_whole_answers() -> None:
    resp = CanonicalResponse(id="r", model="m", content=[
        Text(f"key {AWS}"), ToolCall("c", "f", json.dumps({"k": AWS}))])
    check = OutputCheck(Scanner(credentials=True), "redact")
    out = check.whole(resp)
    assert out.content[0].text == "key [REDACTED:AWS_ACCESS_KEY]"
    assert json.loads(out.content[1].arguments_json) == {"k": "[REDACTED:AWS_ACCESS_KEY]"}
    assert dict(check.found) == {"AWS_ACCESS_KEY": 2}
    with pytest.raises(ContentBlocked):
        OutputCheck(Scanner(credentials=True), "block").whole(
            CanonicalResponse(id="r", model="m", content=[Text(f"key {AWS}")]))


def test_usage_between_chunks_releases_nothing_held_back() -> None:
    """Gemini puts usageMetadata in every chunk: a usage delta between two halves of a key is
    not the end of the text, so nothing of the key may pass before the check has seen all of it."""
    check = OutputCheck(Scanner(credentials=True), "block")
    sent = ""
    with pytest.raises(ContentBlocked):
        for piece in ("Your key is ", AWS[:6], AWS[6:14], AWS[14:] + " keep it safe."):
            sent += released(check.feed([TextDelta(0, piece), UsageDelta(Usage(10, 1))]))
        check.feed([BlockStop(0), Finish("end_turn")])
    assert sent == "Your key is "


@pytest.mark.parametrize("offset", range(0, 32, 3))
def test_a_key_inside_minified_json_longer_than_a_token_is_never_cut_in_two(offset: int) -> None:
    """A run of non-space text longer than MAX_TOKEN is released before it ends; where it is
    cut must not be inside a key, or the key's first half goes out before the check sees it."""
    blob = json.dumps({**{f"k{i}": f"v{i}x" for i in range(150 + offset)}, "aws": AWS, "z": "q" * 3000},
                      separators=(",", ":"))
    check = OutputCheck(Scanner(credentials=True), "block")
    sent = ""
    with pytest.raises(ContentBlocked):
        for i in range(0, len(blob), 16):
            sent += released(check.feed([TextDelta(0, blob[i:i + 16])]))
        check.close()
    assert AWS[:4] not in sent and blob.startswith(sent) and len(sent) > 1000


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_numbers_written_in_groups_are_redacted_whole_however_split(cuts: list[int]) -> None:
    """Cards, phone numbers and IBANs have spaces between their groups: no group of one may go
    out before the whole number has been seen."""
    text = "Card 4111 1111 1111 1111, call +1 (415) 555-0132 or wire to DE89 3704 0044 0532 0130 00 today."
    check = OutputCheck(SCANNER, "redact")
    out = released(run(check, split(text, cuts)))
    assert out == ("Card [REDACTED:CREDIT_CARD], call [REDACTED:PHONE_NUMBER] or wire to [REDACTED:IBAN_CODE] "
                   "today.")


# -- reasoning ------------------------------------------------------------------------------------
SIG = "EqQBCkYIBRgCKkDsignature"  # an Anthropic signature (covers the thinking text)


def thinking(deltas: list) -> str:
    return "".join(d.text for d in deltas if isinstance(d, ThinkingDelta))


def signatures(deltas: list) -> list:
    return [d.signature for d in deltas if isinstance(d, ThinkingDelta) and d.signature]


def run_thinking(check: OutputCheck, chunks: list[str], signature: str | None = SIG) -> list:
    """An Anthropic-shaped thinking block (deltas, then the signature), then a text block."""
    out: list = []
    for c in chunks:
        out += check.feed([ThinkingDelta(c, None, 0)])
    out += check.feed([ThinkingDelta("", signature, 0)] if signature else [])
    out += check.feed([BlockStop(0), TextDelta(1, "Done."), BlockStop(1), Finish("end_turn")])
    return out + check.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_thinking_is_redacted_however_split_and_loses_its_anthropic_signature(cuts: list[int]) -> None:
    check = OutputCheck(SCANNER, "redact")
    out = run_thinking(check, split(TEXT, cuts))
    assert thinking(out) == Scanner.redact(TEXT, SCANNER.scan(TEXT))
    assert AWS not in thinking(out) and released(out) == "Done."
    assert dict(check.found) == {"AWS_ACCESS_KEY": 1, "EMAIL_ADDRESS": 1, "PRIVATE_KEY": 1}
    assert signatures(out) == []  # the text it signed is not the text the client got
    kinds = [type(d).__name__ for d in out]
    assert kinds[-5:] == ["ThinkingDelta", "BlockStop", "TextDelta", "BlockStop", "Finish"]


def test_clean_thinking_keeps_its_signature_after_all_its_text() -> None:
    check = OutputCheck(SCANNER, "redact")
    out = run_thinking(check, ["The user wants ", "a greeting."])
    assert thinking(out) == "The user wants a greeting." and signatures(out) == [SIG]
    last = max(i for i, d in enumerate(out) if isinstance(d, ThinkingDelta))
    assert out[last].signature == SIG  # it rides on the block's last thinking delta
    assert not check.found


def test_gemini_thought_signatures_are_kept_when_the_thought_is_redacted() -> None:
    sig = GEMINI_SIGNATURE_PREFIX + "CiQBwdhQ"
    check = OutputCheck(Scanner(credentials=True), "redact")
    out = check.feed([ThinkingDelta(f"I see {AWS[:8]}", sig, 0), UsageDelta(Usage(1, 1))])
    out += check.feed([ThinkingDelta(AWS[8:] + " in the logs.", None, 0), TextDelta(1, "ok")])
    assert thinking(out) == "I see [REDACTED:AWS_ACCESS_KEY] in the logs." and signatures(out) == [sig]


@pytest.mark.parametrize("mode", ["log", "block"])
def test_thinking_is_counted_and_blocks_like_the_answer(mode: str) -> None:
    check = OutputCheck(Scanner(credentials=True), mode)
    sent: list = []
    pieces = ["Maybe the key ", AWS[:7], AWS[7:] + " works."]
    if mode == "block":
        with pytest.raises(ContentBlocked) as ei:
            for p in pieces:
                sent += check.feed([ThinkingDelta(p, None, 0)])
            check.feed([ThinkingDelta("", SIG, 0), BlockStop(0)])
        assert ei.value.error_type == "output_blocked" and AWS[:4] not in thinking(sent)
    else:
        out = run_thinking(check, pieces)
        assert thinking(out) == "".join(pieces) and signatures(out) == [SIG]  # log changes nothing
    assert dict(check.found) == {"AWS_ACCESS_KEY": 1}


def test_redacted_thinking_is_opaque_and_passes() -> None:
    check = OutputCheck(Scanner(credentials=True), "block")
    out = check.feed([ThinkingDelta("EmwKAhgBEgy" + AWS, None, 0, True), BlockStop(0)])
    assert out[0].redacted and out[0].text.endswith(AWS) and not check.found


def test_whole_thinking() -> None:
    resp = CanonicalResponse(id="r", model="m", content=[
        Thinking(f"the key {AWS} leaked", SIG), Thinking("clean", SIG),
        Thinking(f"also {AWS}", GEMINI_SIGNATURE_PREFIX + "x"), Text("ok")])
    check = OutputCheck(Scanner(credentials=True), "redact")
    out = check.whole(resp).content
    assert (out[0].text, out[0].signature) == ("the key [REDACTED:AWS_ACCESS_KEY] leaked", None)
    assert (out[1].text, out[1].signature) == ("clean", SIG)
    assert (out[2].text, out[2].signature) == ("also [REDACTED:AWS_ACCESS_KEY]", GEMINI_SIGNATURE_PREFIX + "x")
    assert dict(check.found) == {"AWS_ACCESS_KEY": 2}
    with pytest.raises(ContentBlocked):
        OutputCheck(Scanner(credentials=True), "block").whole(
            CanonicalResponse(id="r", model="m", content=[Thinking(f"key {AWS}", SIG), Text("ok")]))

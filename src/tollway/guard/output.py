"""Output checks: the scanners applied to the model's answer, streams included.

`OutputCheck` is a content filter (pipeline.content) on canonical deltas. It reads the answer
text, tool-call arguments and the model's reasoning (Anthropic thinking blocks, Gemini thought
parts, Responses reasoning summaries, Chat `reasoning_content`: all canonical thinking), with
the same scanners and the same verdict: a finding in reasoning is counted, redacted or blocks
exactly like one in the answer, whatever the client format. The filter runs before the client's
writer, so reasoning a format does not show (Anthropic thinking asked through Chat Completions)
is checked all the same: one answer, one verdict and one record, however it is asked for. Only
redacted thinking (opaque, provider-encrypted data) is passed as it is.

A secret split across two stream chunks must still be caught, without buffering the answer: per
text block (per thinking block, per tool call's arguments) the filter holds back only the tail
that a match could still extend, and releases the rest at once:

- the trailing run of printable non-space ASCII (every credential token is such a run, so a
  token is released only once something that is not part of it follows); a run longer than
  MAX_TOKEN characters (minified JSON) is released up to its last delimiter (a quote, comma,
  bracket ...) that no secret contains;
- when PII is scanned, a trailing run of digit groups (`4111 1111 1111`, `+1 (415) 555`),
  capped at MAX_NUMBER characters: such numbers are written with spaces between their groups;
- from an unterminated `-----BEGIN` marker (a PEM private key spans lines), capped at MAX_PEM.

Released text is scanned together with the last CONTEXT characters before it, so patterns
that need context (`password = ...`) still see it; a finding counts once, in the batch where
it ends. Everything held back is released at the end of its block, before any other kind of
content delta, and at close(); usage and message-start deltas pass without releasing it
(Gemini repeats its usage in every chunk: releasing there let a key split across chunks out).

Signed thinking. An Anthropic thinking block's `signature` covers its text: Anthropic refuses a
later request that sends the block back with other text ("invalid signature"), and a client
cannot repair that. So in `redact` mode a thinking block whose text was redacted loses its
Anthropic signature: the client gets the redacted text unsigned (`"signature": ""`; a Responses
reasoning item without `encrypted_content`, which is also what a stored Responses conversation
keeps). Sent back through Tollway's translated path, unsigned thinking is left out of the
request to Anthropic (and thinking is turned off for a tool-use turn that then lacks it, as for
any unsigned history; `translation.strict` refuses that as a dropped parameter): the model loses
that reasoning on the next turn, the conversation goes on, and the secret never reaches the
client. (Sent back on the byte fast path, by a key without output checks, Anthropic refuses the
empty signature, as it would a kept signature over changed text.) Keeping the signature would
leave the secret redacted too but break the conversation at the next turn; replacing the whole
block would lose the rest of the reasoning for nothing. A stream's signature is held until its
block's text has been checked (it rides on the block's last thinking delta). Gemini thought
signatures are kept: one stands for the model's internal thoughts, not for the thought summary
text Gemini shows, and Gemini wants it back on later turns.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tollway.formats.canonical import GEMINI_SIGNATURE_PREFIX, CanonicalResponse
from tollway.formats.stream import MessageStart, TextDelta, ThinkingDelta, ToolCallArgsDelta, UsageDelta
from tollway.guard.scanner import Finding, Scanner
from tollway.pipeline.content import ContentBlocked

MAX_TOKEN = 1024
MAX_PEM = 16 * 1024
CONTEXT = 128
MODES = ("log", "redact", "block")
_DELIMITERS = "\"',;{}()[]<>|`"
MAX_NUMBER = 48  # characters of digit groups held back (a card is 19 digits and a few spaces)
_NUMBER_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ .()+-/")


def _numeric_tail(text: str) -> int:
    """Where a trailing run of digit groups begins (`4111 1111 1111`, `+1 (415) 555`, `DE89 3704`),
    or len(text) when the tail has no digit: card, phone and IBAN numbers are written in groups
    with spaces, and no group may leave before the whole number has been seen."""
    n = len(text)
    k = n
    while k > 0 and n - k < MAX_NUMBER and text[k - 1] in _NUMBER_CHARS:
        k -= 1
    return k if any(c.isdigit() for c in text[k:]) else n


def _hold_from(text: str, numbers: bool = False) -> int:
    """Where the part of `text` that a match could still extend begins (`numbers`: PII is
    scanned, so a trailing group of digits is held too)."""
    n = len(text)
    i = n
    while i > 0 and "!" <= text[i - 1] <= "~":
        i -= 1
    cut = i
    if i < n - MAX_TOKEN:
        # a run longer than any token (minified JSON, a URL list): release it up to its last
        # delimiter no secret contains, not at an arbitrary point that could cut a key in two
        # (its first half would go out before the scan could see the whole key)
        floor = n - MAX_TOKEN
        cut = max(text.rfind(c, floor, n) for c in _DELIMITERS) + 1
        if cut <= floor:  # no structure at all (one base64 blob): no \b-bounded key inside it either
            cut = floor
    if numbers:
        cut = min(cut, _numeric_tail(text[:cut]) if cut < n else _numeric_tail(text))
    begin = text.rfind("-----BEGIN")
    if begin >= 0 and n - begin <= MAX_PEM:
        end = text.find("-----END", begin)
        close = text.find("KEY-----", end) if end >= 0 else -1
        if close < 0:  # the block (or its END line) is not complete: hold all of it
            cut = min(cut, begin)
        elif begin < cut < close + 8:  # complete: never split it
            cut = close + 8
    return cut


def _covers_text(signature: str) -> bool:
    """An Anthropic thinking signature (it covers the text); Gemini's carry their prefix."""
    return not signature.startswith(GEMINI_SIGNATURE_PREFIX)


class OutputCheck:
    """One per answer. `found` counts finding types (the guard stage records them)."""

    def __init__(self, scanner: Scanner, mode: str) -> None:
        assert mode in MODES
        self._scanner = scanner
        self._numbers = scanner.pii  # PII is scanned: hold digit groups back too
        self.mode = mode
        self.found: Counter[str] = Counter()
        self._pending: dict[tuple[str, int], str] = {}  # (kind, index) -> text held back
        self._context: dict[tuple[str, int], str] = {}  # (kind, index) -> last released text
        self._signatures: dict[int, str] = {}  # thinking index -> signature, held until its text is checked
        self._redacted: set[tuple[str, int]] = set()  # blocks whose text this check changed

    # -- scanning ---------------------------------------------------------------------------------
    def _check(self, key: tuple[str, int], text: str) -> str:
        """Scan `text` (about to be released) after its context; count, block or redact."""
        if not text:
            return text
        ctx = self._context.get(key, "")
        ctx_b = ctx.encode("utf-8", "surrogatepass")
        window = ctx_b + text.encode("utf-8", "surrogatepass")
        self._context[key] = (ctx + text)[-CONTEXT:]
        found = [f for f in self._scanner.scan_bytes(window) if f.end > len(ctx_b)]
        if not found:
            return text
        self._count(found)
        if self.mode != "redact":
            return text
        self._redacted.add(key)
        clipped = [Finding(f.type, f.kind, max(f.start, len(ctx_b)), f.end) for f in found]
        return Scanner.redact_bytes(window, clipped)[len(ctx_b):].decode("utf-8", "surrogatepass")

    def _count(self, found: list[Finding]) -> None:
        for f in found:
            self.found[f.type] += 1
        if self.mode == "block":
            raise ContentBlocked("Tollway's output check withheld the rest of this answer: it contained "
                                 + ", ".join(sorted(self.found)) + ".", "output_blocked")

    # -- streams ----------------------------------------------------------------------------------
    def _delta(self, key: tuple[str, int], text: str) -> Any:
        kind = key[0]
        if kind == "text":
            return TextDelta(key[1], text)
        return ToolCallArgsDelta(key[1], text) if kind == "args" else ThinkingDelta(text, None, key[1])

    def _flush(self, out: list, keep: tuple[str, int] | None = None) -> None:
        for key in [k for k in self._pending if k != keep]:
            text = self._check(key, self._pending.pop(key))
            if key[0] == "thinking":  # the block's text is all checked: its signature may follow
                sig = self._signatures.pop(key[1], None)
                if sig is not None and key in self._redacted and _covers_text(sig):
                    sig = None
                if text or sig:
                    out.append(ThinkingDelta(text, sig, key[1]))
            elif text:
                out.append(self._delta(key, text))

    def feed(self, deltas: list) -> list:
        out: list = []
        for d in deltas:
            if isinstance(d, TextDelta):
                key, text = ("text", d.index), d.text
            elif isinstance(d, ToolCallArgsDelta):
                key, text = ("args", d.index), d.fragment
            elif isinstance(d, ThinkingDelta) and not d.redacted:
                key, text = ("thinking", d.index), d.text
                if d.signature:
                    self._signatures[d.index] = d.signature
            elif isinstance(d, (UsageDelta, MessageStart)):
                out.append(d)  # not content: Gemini repeats its usage in every chunk, mid-token
                continue
            else:
                self._flush(out)
                out.append(d)
                continue
            self._flush(out, keep=key)
            pending = self._pending.get(key, "") + text
            cut = _hold_from(pending, self._numbers)
            self._pending[key] = pending[cut:]
            released = self._check(key, pending[:cut])
            if released:
                out.append(self._delta(key, released))
        return out

    def close(self) -> list:
        out: list = []
        self._flush(out)
        return out

    def sibling(self) -> "OutputCheck":
        """A fresh check with the same scanner and mode (one per choice of a legacy stream)."""
        return OutputCheck(self._scanner, self.mode)

    # -- whole answers ----------------------------------------------------------------------------
    def whole(self, resp: CanonicalResponse) -> CanonicalResponse:
        for part in resp.content:
            if part.kind == "text":
                part.text = self.check_text(part.text)
            elif part.kind == "tool_call":
                part.arguments_json = self.check_text(part.arguments_json)
            elif part.kind == "thinking" and not part.redacted and part.text:
                text = self.check_text(part.text)
                if text != part.text:
                    part.text = text
                    if part.signature and _covers_text(part.signature):
                        part.signature = None  # see the module docstring: signed thinking
        return resp

    def check_text(self, text: str) -> str:
        """One whole text: counted, and redacted (redact) or refused (block, ContentBlocked)."""
        b = text.encode("utf-8", "surrogatepass")
        found = self._scanner.scan_bytes(b)
        if not found:
            return text
        self._count(found)
        if self.mode != "redact":
            return text
        return Scanner.redact_bytes(b, found).decode("utf-8", "surrogatepass")

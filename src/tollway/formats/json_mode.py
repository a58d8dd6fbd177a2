"""JSON mode (`response_format: {"type": "json_object"}`, Responses `text.format` json_object)
for a provider without one (Anthropic), emulated with a tool so the answer is valid JSON.

The request gets one more tool, `json_response`, whose input is any JSON object, and a
`tool_choice` that makes the model use a tool: that one alone when the client has no tools of
its own (or said `none`), any tool otherwise (so a real tool call stays possible). The answer's
call to it comes back to the client as the message text (its arguments, a JSON object) with
the stop reason of a normal answer; streamed, its argument fragments become text deltas.

Extended thinking allows no forced tool choice: then the instruction alone asks for JSON.
"""

from __future__ import annotations

from tollway.formats.canonical import CanonicalRequest, CanonicalResponse, NamedToolChoice, Text, ToolDef
from tollway.formats.stream import Finish, StreamDelta, TextDelta, ToolCallArgsDelta, ToolCallStart

JSON_TOOL = "json_response"
INSTRUCTION = ("Respond with a single valid JSON object and nothing else: no prose, no code fences.")
_TOOL_DESCRIPTION = "Give your answer with this tool: its input is your whole answer, as a JSON object."


def needs_emulation(req: CanonicalRequest, wire: str) -> bool:
    rf = req.response_format
    return wire == "anthropic" and rf is not None and rf.type == "json_object"


class JsonUnwrapper:
    """Turns the `json_response` tool call back into text, whole or streamed."""

    __slots__ = ("name", "_index", "_other_calls")

    def __init__(self, name: str) -> None:
        self.name = name
        self._index: int | None = None
        self._other_calls = False

    def response(self, resp: CanonicalResponse) -> CanonicalResponse:
        content = []
        for p in resp.content:
            if p.kind == "tool_call" and p.name == self.name:
                content.append(Text(p.arguments_json or "{}"))
            else:
                self._other_calls = self._other_calls or p.kind == "tool_call"
                content.append(p)
        resp.content = content
        if resp.stop_reason == "tool_use" and not self._other_calls:
            resp.stop_reason = "end_turn"
        return resp

    def deltas(self, deltas: list[StreamDelta]) -> list[StreamDelta]:
        out: list[StreamDelta] = []
        for d in deltas:
            if isinstance(d, ToolCallStart):
                if d.name == self.name:
                    self._index = d.index
                    continue
                self._other_calls = True
            elif isinstance(d, ToolCallArgsDelta) and d.index == self._index:
                d = TextDelta(d.index, d.fragment)
            elif isinstance(d, Finish) and d.stop_reason == "tool_use" and not self._other_calls:
                d = Finish("end_turn", d.stop_sequence)
            out.append(d)
        return out


def emulate(req: CanonicalRequest) -> JsonUnwrapper | None:
    """Rewrite `req` to ask for JSON through a tool; the unwrapper for its answer (None when
    thinking is on and only the instruction could be added)."""
    req.response_format = None
    req.system = [*req.system, Text(INSTRUCTION)]
    if req.reasoning is not None and req.reasoning.enabled and req.reasoning.effort != "none":
        return None
    names = {t.name for t in req.tools}
    name = JSON_TOOL
    while name in names:
        name = "_" + name
    own_tools = bool(req.tools) and req.tool_choice != "none"  # (tools stay declared: history may use them)
    req.tools = [*req.tools, ToolDef(name, _TOOL_DESCRIPTION, {"type": "object", "additionalProperties": True})]
    if not own_tools:
        req.tool_choice = NamedToolChoice(name)
    elif req.tool_choice in (None, "auto"):
        req.tool_choice = "required"
    return JsonUnwrapper(name)

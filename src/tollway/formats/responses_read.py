"""Reading a Responses API answer (a Response object) back into canonical form.

Tollway mostly *writes* Responses objects (for clients, from canonical). When OpenAI itself
serves a Responses call on the fast path, the answer arrives as a Response object (whole, or as
the `response` of a stream's terminal `response.completed` event); the cache reads it here.
Only what canonical can hold is accepted: message text, function calls, and reasoning summaries
without encrypted content. Anything else (hosted tool calls such as web_search_call, encrypted
reasoning, refusals) raises `TranslationError`, so such an answer is never stored half-read.
"""

from __future__ import annotations

from tollway.formats._util import as_list
from tollway.formats.canonical import CanonicalResponse, Text, Thinking, ToolCall
from tollway.formats.errors import TranslationError
from tollway.formats.openai_chat import usage_to_canonical  # reads the Responses usage shape too


def response_to_canonical(body: object) -> CanonicalResponse:
    if not isinstance(body, dict) or body.get("object") != "response":
        raise TranslationError("not a Response object", "response")
    status = body.get("status")
    if status == "completed":
        stop = "end_turn"
    elif status == "incomplete":
        details = body.get("incomplete_details") if isinstance(body.get("incomplete_details"), dict) else {}
        stop = "content_filter" if details.get("reason") == "content_filter" else "max_tokens"
    else:
        raise TranslationError(f"the response is {status!r}, not completed", "status")
    content: list = []
    for item in as_list(body.get("output")):
        if not isinstance(item, dict):
            raise TranslationError("an output item is not an object", "output")
        kind = item.get("type")
        if kind == "message":
            for part in as_list(item.get("content")):
                if not isinstance(part, dict) or part.get("type") != "output_text" or not isinstance(part.get("text"), str):
                    raise TranslationError("a message part other than output_text", "output")
                if part.get("annotations"):
                    raise TranslationError("output text with annotations", "output")
                content.append(Text(part["text"]))
        elif kind == "function_call":
            args = item.get("arguments")
            content.append(ToolCall(str(item.get("call_id") or ""), str(item.get("name") or ""),
                                    args if isinstance(args, str) and args else "{}"))
        elif kind == "reasoning" and not item.get("encrypted_content"):
            summary = "".join(s.get("text", "") for s in as_list(item.get("summary"))
                              if isinstance(s, dict) and isinstance(s.get("text"), str))
            content.append(Thinking(summary))
        else:
            raise TranslationError(f"output item of type {kind!r}", "output")
    if stop == "end_turn" and any(p.kind == "tool_call" for p in content):
        stop = "tool_use"
    created = body.get("created_at")
    return CanonicalResponse(id=str(body.get("id") or ""), model=str(body.get("model") or ""), content=content,
                             stop_reason=stop, usage=usage_to_canonical(body.get("usage")),
                             created=int(created) if isinstance(created, int | float) else None)


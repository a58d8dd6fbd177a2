"""The four client formats: render a neutral case in the SDK's own shape, call it, and read back
what the SDK user sees (text, tool calls, stop reason, usage) into one `Answer`.

Streams go through each SDK's own accumulating helper (`chat.completions.stream(...)`,
`responses.stream(...).get_final_response()`, `messages.stream(...).get_final_message()`), which
validate the event sequence as they go; the text deltas are counted on the way. google-genai has
no accumulating helper: its stream chunks are folded here as its users do.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
from google import genai
from google.genai import types as gtypes

from tests.conformance.spec import TOOL_SCHEMA, TOOLS, Assistant, Case, ToolCall, ToolResult, User


@dataclass
class SeenToolCall:
    id: str
    name: str
    arguments: Any  # parsed


@dataclass
class Answer:
    id: str
    model: str
    text: str
    tool_calls: list[SeenToolCall]
    stop: str
    input_tokens: int | None  # in the client's own sense (Anthropic: the uncached part)
    output_tokens: int | None
    cache_read: int | None
    cache_write: int | None
    text_deltas: int | None = None  # streams only
    raw: Any = field(default=None, repr=False)


def _fill(text: str, nonce: str) -> str:
    return text.replace("{nonce}", nonce)


# ---------------------------------------------------------------- OpenAI Chat Completions


def chat_request(case: Case, model: str, nonce: str, stream: bool) -> dict[str, Any]:
    msgs: list[dict[str, Any]] = []
    if case.system:
        msgs.append({"role": "system", "content": case.system})
    for t in case.turns:
        if isinstance(t, User):
            text = _fill(t.text, nonce)
            content: Any = text if t.image is None else [
                {"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": t.image.data_url}}]
            msgs.append({"role": "user", "content": content})
        elif isinstance(t, Assistant):
            msgs.append({"role": "assistant", "content": t.text})
        elif isinstance(t, ToolCall):
            msgs.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": json.dumps(t.arguments)}}]})
        elif isinstance(t, ToolResult):
            msgs.append({"role": "tool", "tool_call_id": t.id, "content": t.content})
    kw: dict[str, Any] = {"model": model, "messages": msgs}
    if case.tools:
        kw["tools"] = [{"type": "function", "function": {"name": n, "description": TOOLS[n], "parameters": TOOL_SCHEMA}}
                       for n in case.tools]
    if case.max_tokens:
        # both spellings are in use: the deprecated one non-streamed, the current one streamed
        kw["max_completion_tokens" if stream else "max_tokens"] = case.max_tokens
    if stream:
        kw["stream_options"] = {"include_usage": True}
    return kw


def call_chat(client: openai.OpenAI, kw: dict[str, Any], stream: bool) -> Answer:
    deltas = None
    if stream:
        deltas = 0
        with client.chat.completions.stream(**kw) as s:
            for ev in s:
                deltas += ev.type == "content.delta"
            try:
                final = s.get_final_completion()
            except openai.LengthFinishReasonError as e:  # the helper's way of saying finish_reason=length
                final = e.completion
    else:
        final = client.chat.completions.create(**kw)
    assert len(final.choices) == 1, final
    choice = final.choices[0]
    msg = choice.message
    calls = [SeenToolCall(tc.id, tc.function.name, json.loads(tc.function.arguments)) for tc in msg.tool_calls or ()]
    assert final.usage is not None, f"no usage in the ChatCompletion: {final}"
    u = final.usage
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens, u
    details = u.prompt_tokens_details
    return Answer(final.id, final.model, msg.content or "", calls, choice.finish_reason, u.prompt_tokens,
                  u.completion_tokens, details.cached_tokens if details else None,
                  details.cache_write_tokens if details else None, deltas, final)


# ---------------------------------------------------------------- OpenAI Responses


def responses_request(case: Case, model: str, nonce: str, stream: bool) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for t in case.turns:
        if isinstance(t, User):
            text = _fill(t.text, nonce)
            content: Any = text if t.image is None else [
                {"type": "input_text", "text": text},
                {"type": "input_image", "image_url": t.image.data_url, "detail": "auto"}]
            items.append({"role": "user", "content": content})
        elif isinstance(t, Assistant):
            items.append({"role": "assistant", "content": t.text})
        elif isinstance(t, ToolCall):
            items.append({"type": "function_call", "call_id": t.id, "name": t.name,
                          "arguments": json.dumps(t.arguments)})
        elif isinstance(t, ToolResult):
            items.append({"type": "function_call_output", "call_id": t.id, "output": t.content})
    single = len(items) == 1 and isinstance(items[0].get("content"), str)
    kw: dict[str, Any] = {"model": model, "input": items[0]["content"] if single else items}
    if case.system:
        kw["instructions"] = case.system
    if case.tools:
        kw["tools"] = [{"type": "function", "name": n, "description": TOOLS[n], "parameters": TOOL_SCHEMA}
                       for n in case.tools]
    if case.max_tokens:
        kw["max_output_tokens"] = case.max_tokens
    return kw


def call_responses(client: openai.OpenAI, kw: dict[str, Any], stream: bool) -> Answer:
    deltas = None
    if stream:
        deltas = 0
        incomplete = None
        with client.responses.stream(**kw) as s:
            for ev in s:
                deltas += ev.type == "response.output_text.delta"
                if ev.type == "response.incomplete":
                    incomplete = ev.response
            # the helper's final response exists only after `response.completed` (as with OpenAI itself);
            # an incomplete answer is read from its terminal `response.incomplete` event
            final = incomplete if incomplete is not None else s.get_final_response()
    else:
        final = client.responses.create(**kw)
    calls = [SeenToolCall(it.call_id, it.name, json.loads(it.arguments))
             for it in final.output if it.type == "function_call"]
    stop = final.status or ""
    if final.status == "incomplete":
        stop += ":" + (final.incomplete_details.reason if final.incomplete_details else "")
    assert final.usage is not None, f"no usage in the Response: {final}"
    u = final.usage
    assert u.total_tokens == u.input_tokens + u.output_tokens, u
    details = u.input_tokens_details  # required in the Responses usage object
    assert details is not None and u.output_tokens_details is not None, f"usage without its details: {u}"
    return Answer(final.id, final.model, final.output_text, calls, stop, u.input_tokens, u.output_tokens,
                  details.cached_tokens, getattr(details, "cache_write_tokens", None), deltas, final)


# ---------------------------------------------------------------- Anthropic Messages


def _anthropic_image(img: Any) -> dict[str, Any]:
    if img.url:
        return {"type": "image", "source": {"type": "url", "url": img.url}}
    return {"type": "image", "source": {"type": "base64", "media_type": img.media_type, "data": img.data}}


def messages_request(case: Case, model: str, nonce: str, stream: bool) -> dict[str, Any]:
    msgs: list[dict[str, Any]] = []
    for t in case.turns:
        if isinstance(t, User):
            text = _fill(t.text, nonce)
            content: Any = text if t.image is None else [_anthropic_image(t.image), {"type": "text", "text": text}]
            msgs.append({"role": "user", "content": content})
        elif isinstance(t, Assistant):
            msgs.append({"role": "assistant", "content": t.text})
        elif isinstance(t, ToolCall):
            msgs.append({"role": "assistant", "content": [
                {"type": "tool_use", "id": t.id, "name": t.name, "input": t.arguments}]})
        elif isinstance(t, ToolResult):
            msgs.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": t.id, "content": t.content}]})
    kw: dict[str, Any] = {"model": model, "messages": msgs, "max_tokens": case.max_tokens or 1024}
    if case.system:
        kw["system"] = case.system
    if case.tools:
        kw["tools"] = [{"name": n, "description": TOOLS[n], "input_schema": TOOL_SCHEMA} for n in case.tools]
    return kw


def call_messages(client: anthropic.Anthropic, kw: dict[str, Any], stream: bool) -> Answer:
    deltas = None
    if stream:
        deltas = 0
        with client.messages.stream(**kw) as s:
            for ev in s:
                deltas += ev.type == "text"
            final = s.get_final_message()
    else:
        final = client.messages.create(**kw)
    text = "".join(b.text for b in final.content if b.type == "text")
    calls = [SeenToolCall(b.id, b.name, b.input) for b in final.content if b.type == "tool_use"]
    u = final.usage
    return Answer(final.id, final.model, text, calls, final.stop_reason or "", u.input_tokens, u.output_tokens,
                  u.cache_read_input_tokens, u.cache_creation_input_tokens, deltas, final)


# ---------------------------------------------------------------- Gemini (google-genai)


def _gemini_image(img: Any) -> gtypes.Part:
    if img.url:
        return gtypes.Part(file_data=gtypes.FileData(file_uri=img.url, mime_type="image/png"))
    return gtypes.Part.from_bytes(data=base64.b64decode(img.data), mime_type=img.media_type)


def gemini_request(case: Case, model: str, nonce: str, stream: bool) -> dict[str, Any]:
    contents: list[gtypes.Content] = []
    for t in case.turns:
        if isinstance(t, User):
            parts = [gtypes.Part(text=_fill(t.text, nonce))]
            if t.image is not None:
                parts.append(_gemini_image(t.image))
            contents.append(gtypes.Content(role="user", parts=parts))
        elif isinstance(t, Assistant):
            contents.append(gtypes.Content(role="model", parts=[gtypes.Part(text=t.text)]))
        elif isinstance(t, ToolCall):
            contents.append(gtypes.Content(role="model", parts=[gtypes.Part(
                function_call=gtypes.FunctionCall(id=t.id, name=t.name, args=t.arguments))]))
        elif isinstance(t, ToolResult):
            contents.append(gtypes.Content(role="user", parts=[gtypes.Part(function_response=gtypes.FunctionResponse(
                id=t.id, name=t.name, response={"output": t.content}))]))
    config = gtypes.GenerateContentConfig(
        automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True))
    if case.system:
        config.system_instruction = case.system
    if case.tools:
        config.tools = [gtypes.Tool(function_declarations=[
            gtypes.FunctionDeclaration(name=n, description=TOOLS[n], parameters_json_schema=TOOL_SCHEMA)
            for n in case.tools])]
    if case.max_tokens:
        config.max_output_tokens = case.max_tokens
    return {"model": model, "contents": contents, "config": config}


def call_gemini(client: genai.Client, kw: dict[str, Any], stream: bool) -> Answer:
    deltas = None
    text, calls, finish, usage, rid, model = "", [], None, None, "", ""
    chunks = client.models.generate_content_stream(**kw) if stream else [client.models.generate_content(**kw)]
    if stream:
        deltas = 0
    for ch in chunks:
        rid, model = ch.response_id or rid, ch.model_version or model
        usage = ch.usage_metadata or usage
        for cand in ch.candidates or ():
            finish = cand.finish_reason or finish
            for p in (cand.content.parts if cand.content else None) or ():
                if p.text and not p.thought:
                    text += p.text
                    deltas = None if deltas is None else deltas + 1
                if p.function_call:
                    fc = p.function_call
                    calls.append(SeenToolCall(fc.id or "", fc.name, dict(fc.args or {})))
    assert usage is not None, "no usage_metadata in the answer"
    assert finish is not None, "no finish_reason in the answer"
    output = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    assert usage.total_token_count == (usage.prompt_token_count or 0) + output, usage
    return Answer(rid, model, text, calls, finish.value, usage.prompt_token_count, output,
                  usage.cached_content_token_count, None, deltas, chunks)


BUILD = {"openai-chat": chat_request, "openai-responses": responses_request, "anthropic-sdk": messages_request,
         "gemini-sdk": gemini_request}
CALL = {"openai-chat": call_chat, "openai-responses": call_responses, "anthropic-sdk": call_messages,
        "gemini-sdk": call_gemini}

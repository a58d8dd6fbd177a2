"""What the provider received, read back in its own wire format into one neutral view.

The fake records every request; `Upstream` looks at one of them whatever its dialect:
OpenAI Chat (`/chat/completions`, also Azure and local servers), OpenAI Responses
(`/responses`), Anthropic Messages (`/v1/messages`) or Gemini (`:generateContent`,
`:streamGenerateContent`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.fakes import anthropic_wire, gemini_wire, openai_wire
from tests.fakes.provider import ReceivedRequest
from tests.fakes.scenario import from_anthropic, from_gemini, from_openai_chat, from_responses


def _parse_data_url(url: str) -> tuple[str, ...]:
    if url.startswith("data:") and ";base64," in url:
        head, data = url[5:].split(";base64,", 1)
        return ("base64", head, data)
    return ("url", url)


def _text_of(content: Any, kinds: tuple[str, ...] = ("text", "input_text", "output_text")) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in kinds)
    return ""


def _result_text(content: Any) -> str:
    """A tool result's text, whatever container the translator used."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_result_text(p) for p in content)
    if isinstance(content, dict):
        if isinstance(content.get("text"), str):
            return content["text"]
        if len(content) == 1:
            return _result_text(next(iter(content.values())))
        return json.dumps(content)
    return "" if content is None else str(content)


_GEMINI_OPAQUE = ("args", "response", "parameters", "parametersJsonSchema", "responseJsonSchema", "responseSchema")


def _gemini_camel(obj: Any) -> Any:
    """snake_case field names → lowerCamelCase, leaving function args, results and schemas alone."""
    if isinstance(obj, list):
        return [_gemini_camel(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for k, v in obj.items():
        head, *rest = k.split("_")
        name = head + "".join(w.capitalize() for w in rest)
        out[name] = v if name in _GEMINI_OPAQUE else _gemini_camel(v)
    return out


@dataclass(frozen=True)
class ReportedUsage:
    prompt: int  # the whole prompt, cached parts included
    cache_read: int
    cache_write: int
    output: int


@dataclass
class Upstream:
    req: ReceivedRequest

    @property
    def wire(self) -> str:
        p = self.req.path
        if ":generateContent" in p or ":streamGenerateContent" in p:
            return "gemini"
        if p.endswith("/chat/completions"):
            return "chat"
        if p.endswith("/responses"):
            return "responses"
        if p == "/v1/messages":
            return "anthropic"
        return "other:" + p

    @property
    def body(self) -> dict[str, Any]:
        assert isinstance(self.req.json, dict), self.req.body[:500]
        return self.req.json

    @property
    def view(self) -> dict[str, Any]:
        """The body as the provider reads it: Gemini takes proto field names in snake_case too
        (google-genai sends `fileData: {file_uri, mime_type}`), and URL-safe base64 bytes."""
        return _gemini_camel(self.body) if self.wire == "gemini" else self.body

    # -- what the fake charged for this request ------------------------------------------------
    def reported_usage(self) -> ReportedUsage:
        """The usage the fake reported for this request, read the way its wire format means it."""
        extract = {"chat": from_openai_chat, "responses": from_responses, "anthropic": from_anthropic,
                   "gemini": from_gemini}[self.wire]
        sc = extract(self.body, self.req.text, "")
        if self.wire == "chat":
            u = openai_wire.chat_usage(sc)
            d = u.get("prompt_tokens_details") or {}
            return ReportedUsage(u["prompt_tokens"], d.get("cached_tokens") or 0, d.get("cache_write_tokens") or 0,
                                 u["completion_tokens"])
        if self.wire == "responses":
            u = openai_wire.response(sc, self.body)["usage"]
            d = u.get("input_tokens_details") or {}
            return ReportedUsage(u["input_tokens"], d.get("cached_tokens") or 0, d.get("cache_write_tokens") or 0,
                                 u["output_tokens"])
        if self.wire == "anthropic":  # input_tokens leaves out what was read from and written to the cache
            u = anthropic_wire.usage(sc)
            read, write = u.get("cache_read_input_tokens") or 0, u.get("cache_creation_input_tokens") or 0
            return ReportedUsage(u["input_tokens"] + read + write, read, write, u["output_tokens"])
        u = gemini_wire.usage(sc)
        return ReportedUsage(u["promptTokenCount"], u.get("cachedContentTokenCount") or 0, 0,
                             u["candidatesTokenCount"])

    def error_message(self, status: int) -> str:
        """The message of the error body the fake answered with."""
        fam = self.req.provider
        if fam == "anthropic":
            return anthropic_wire.error_body(status)["error"]["message"]
        if fam == "gemini":
            return gemini_wire.error_body(status)["error"]["message"]
        return openai_wire.error_body(status, "azure" if fam == "azure" else "openai")["error"]["message"]

    # -- messages ------------------------------------------------------------------------------
    def _items(self) -> list[dict[str, Any]]:
        """(role, content) pairs in a common form: role user|assistant|system|tool, raw content."""
        b, w = self.view, self.wire
        if w == "chat":
            return [m for m in b.get("messages") or [] if isinstance(m, dict)]
        if w == "responses":
            inp = b.get("input")
            if isinstance(inp, str):
                return [{"role": "user", "content": inp}]
            return [i for i in inp or [] if isinstance(i, dict)]
        if w == "anthropic":
            return [m for m in b.get("messages") or [] if isinstance(m, dict)]
        if w == "gemini":
            return [{"role": "assistant" if c.get("role") == "model" else "user", "parts": c.get("parts") or []}
                    for c in b.get("contents") or [] if isinstance(c, dict)]
        raise AssertionError(f"unexpected upstream request {self.req.method} {self.req.path}")

    def system(self) -> list[str]:
        b, w = self.view, self.wire
        if w == "chat":
            return [_text_of(m.get("content")) for m in self._items() if m.get("role") in ("system", "developer")]
        if w == "responses":
            out = [b["instructions"]] if b.get("instructions") else []
            return out + [_text_of(i.get("content")) for i in self._items()
                          if i.get("role") in ("system", "developer")]
        if w == "anthropic":
            s = b.get("system")
            return [_text_of(s)] if s else []
        si = b.get("systemInstruction") or b.get("system_instruction")
        if not si:
            return []
        return ["".join(p.get("text", "") for p in si.get("parts") or [])]

    def turns(self) -> list[tuple[str, str]]:
        """User and assistant turns with their text, in order (system and tool traffic left out)."""
        out: list[tuple[str, str]] = []
        for it in self._items():
            role = it.get("role")
            if self.wire == "gemini":
                parts = it["parts"]
                if any("functionCall" in p or "functionResponse" in p for p in parts):
                    continue
                out.append((role, "".join(p.get("text", "") for p in parts if not p.get("thought"))))
            elif role in ("user", "assistant") and it.get("type") in (None, "message"):
                content = it.get("content")
                if isinstance(content, list) and any(
                        isinstance(p, dict) and p.get("type") in ("tool_use", "tool_result") for p in content):
                    continue
                if role == "assistant" and self.wire == "chat" and it.get("tool_calls"):
                    continue
                out.append((role, _text_of(content)))
        return out

    def images(self) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for it in self._items():
            if self.wire == "gemini":
                for p in it["parts"]:
                    if "inlineData" in p:
                        data = p["inlineData"].get("data", "").replace("-", "+").replace("_", "/")
                        out.append(("base64", p["inlineData"].get("mimeType", ""), data))
                    elif "fileData" in p:
                        out.append(("url", p["fileData"].get("fileUri", "")))
                continue
            content = it.get("content")
            for p in content if isinstance(content, list) else []:
                if not isinstance(p, dict):
                    continue
                if p.get("type") == "image_url":
                    iu = p.get("image_url")
                    out.append(_parse_data_url(iu.get("url", "") if isinstance(iu, dict) else str(iu)))
                elif p.get("type") == "input_image":
                    out.append(_parse_data_url(p.get("image_url") or ""))
                elif p.get("type") == "image":
                    src = p.get("source") or {}
                    if src.get("type") == "url":
                        out.append(("url", src.get("url", "")))
                    else:
                        out.append(("base64", src.get("media_type", ""), src.get("data", "")))
        return out

    # -- tools -----------------------------------------------------------------------------------
    def tool_definitions(self) -> dict[str, dict[str, Any]]:
        """name -> parameters schema, as declared to the provider."""
        out: dict[str, dict[str, Any]] = {}
        for t in self.view.get("tools") or []:
            if self.wire == "chat":
                fn = t.get("function") or {}
                out[fn.get("name")] = fn.get("parameters") or {}
            elif self.wire == "responses":
                out[t.get("name")] = t.get("parameters") or {}
            elif self.wire == "anthropic":
                out[t.get("name")] = t.get("input_schema") or {}
            else:
                for fd in t.get("functionDeclarations") or t.get("function_declarations") or []:
                    out[fd.get("name")] = fd.get("parameters") or fd.get("parametersJsonSchema") or {}
        return out

    def tool_calls(self) -> list[tuple[str | None, str, Any]]:
        """Tool calls in the history: (id, name, parsed arguments)."""
        out: list[tuple[str | None, str, Any]] = []
        for it in self._items():
            if self.wire == "chat":
                for tc in it.get("tool_calls") or []:
                    fn = tc.get("function") or {}
                    out.append((tc.get("id"), fn.get("name"), json.loads(fn.get("arguments") or "null")))
            elif self.wire == "responses":
                if it.get("type") == "function_call":
                    out.append((it.get("call_id"), it.get("name"), json.loads(it.get("arguments") or "null")))
            elif self.wire == "anthropic":
                content = it.get("content")
                for b in content if isinstance(content, list) else []:
                    if b.get("type") == "tool_use":
                        out.append((b.get("id"), b.get("name"), b.get("input")))
            else:
                for p in it["parts"]:
                    if "functionCall" in p:
                        fc = p["functionCall"]
                        out.append((fc.get("id"), fc.get("name"), fc.get("args")))
        return out

    def tool_results(self) -> list[tuple[str | None, str | None, str]]:
        """Tool results: (call id, function name, text). Gemini links by name, the others by id."""
        out: list[tuple[str | None, str | None, str]] = []
        for it in self._items():
            if self.wire == "chat":
                if it.get("role") == "tool":
                    out.append((it.get("tool_call_id"), None, _result_text(it.get("content"))))
            elif self.wire == "responses":
                if it.get("type") == "function_call_output":
                    out.append((it.get("call_id"), None, _result_text(it.get("output"))))
            elif self.wire == "anthropic":
                content = it.get("content")
                for b in content if isinstance(content, list) else []:
                    if b.get("type") == "tool_result":
                        out.append((b.get("tool_use_id"), None, _result_text(b.get("content"))))
            else:
                for p in it["parts"]:
                    if "functionResponse" in p:
                        fr = p["functionResponse"]
                        out.append((fr.get("id"), fr.get("name"), _result_text(fr.get("response"))))
        return out

    def max_tokens(self) -> int | None:
        b = self.view
        if self.wire == "chat":
            return b.get("max_completion_tokens", b.get("max_tokens"))
        if self.wire == "responses":
            return b.get("max_output_tokens")
        if self.wire == "anthropic":
            return b.get("max_tokens")
        return (b.get("generationConfig") or {}).get("maxOutputTokens")

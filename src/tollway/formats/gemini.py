"""Google Gemini generateContent / streamGenerateContent (v1beta) ⇄ canonical.

Provider side: `request_from_canonical` (the body; the model and `:streamGenerateContent?alt=sse`
go in the URL, built by the provider module), `response_to_canonical`, `StreamParser`.
Client side, kept symmetrical: `request_to_canonical(body, model)`, `response_from_canonical`,
`StreamWriter`. The streaming classes live in `gemini_stream` and are re-exported here.

Gemini sends whole function calls (never argument fragments), has no tool-call ids (older
models), and signs reasoning with `thoughtSignature` on parts. Thought signatures are exposed to
clients behind the `gemini:` prefix so only a Gemini target ever receives them back; Gemini 3
rejects replayed function calls without a signature, so those get Google's documented
`skip_thought_signature_validator` sentinel.
"""

from __future__ import annotations

import re
from typing import Any

from tollway.formats import stop_reasons
from tollway.formats._util import (
    arguments_object,
    as_list, dumps_str, guess_mime, is_neutral, loads, new_id, opt_int, opt_num, opt_str,
    parse_args, req_dict, req_list, req_str, stop_list,
)
from tollway.formats.canonical import (
    source_param,
    GEMINI_SIGNATURE_PREFIX, CanonicalRequest, CanonicalResponse, Document, Image, Message,
    NamedToolChoice, Reasoning, ResponseFormat, Text, Thinking, ToolCall, ToolDef, ToolResult,
)
from tollway.formats.errors import TranslationError
from tollway.usage import CountReader, Usage

FORMAT = "gemini"
SKIP_SIGNATURE = "skip_thought_signature_validator"
EFFORT_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 32768}
_GEMINI_MAJOR = re.compile(r"gemini-(\d+)")

# Extras Gemini can honour, by source name → generationConfig key.
_GEN_EXTRAS = {"seed": "seed", "presence_penalty": "presencePenalty", "frequency_penalty": "frequencyPenalty"}
_OPENAPI_KEYS = frozenset((
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example",
    "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
))


def openapi_schema(schema: Any) -> Any:
    """JSON Schema → the OpenAPI subset Gemini's `parameters` / `responseSchema` accept."""
    if isinstance(schema, list):
        return [openapi_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict = {}
    for k, v in schema.items():
        if k not in _OPENAPI_KEYS:
            continue
        if k == "type" and isinstance(v, list):
            types = [t for t in v if t != "null"]
            out["type"] = types[0] if types else "null"
            if "null" in v:
                out["nullable"] = True
        elif k == "properties" and isinstance(v, dict):
            out[k] = {name: openapi_schema(s) for name, s in v.items()}
        elif k in ("items", "anyOf"):
            out[k] = openapi_schema(v)
        else:
            out[k] = v
    return out


def _wants_signature(model: str) -> bool:
    m = _GEMINI_MAJOR.search(model)
    return bool(m) and int(m.group(1)) >= 3


# --- request: canonical → provider -------------------------------------------------------------

def _media_part(p, param: str) -> dict:
    if p.data is not None:
        mime = p.media_type or ("image/png" if p.kind == "image" else "application/pdf")
        return {"inlineData": {"mimeType": mime, "data": p.data}}
    uri = p.url if p.kind == "image" else (p.url or p.file_id)
    if not uri:
        raise TranslationError("file ids cannot be sent to Gemini", param)
    default = "image/jpeg" if p.kind == "image" else "application/pdf"
    return {"fileData": {"mimeType": p.media_type or guess_mime(uri, default), "fileUri": uri}}


def _function_response(r: ToolResult, name: str) -> dict:
    text = r.text
    value: Any = None
    if text.strip().startswith("{"):
        try:
            value = loads(text)
        except ValueError:
            value = None
    if not isinstance(value, dict):
        value = {"error": text} if r.is_error else {"result": text}
    elif r.is_error:
        value = {"error": value}
    return {"functionResponse": {"name": name, "response": value}}


def request_from_canonical(req: CanonicalRequest, model: str, *, schema_mode: str = "json",
                           thought_signature_fallback: bool | None = None) -> tuple[dict, list[str]]:
    """canonical → generateContent body (the model goes in the URL); also the dropped params.
    `schema_mode`: "json" sends tool and response schemas as full JSON Schema
    (`parametersJsonSchema`, `responseJsonSchema`); "openapi" converts them to the OpenAPI subset
    (`parameters`, `responseSchema`) for older models."""
    dropped: list[str] = []
    sig_fallback = _wants_signature(model) if thought_signature_fallback is None else thought_signature_fallback
    names: dict[str, str] = {}
    contents: list[dict] = []
    for i, m in enumerate(req.messages):
        pm = f"messages[{i}]"
        parts: list[dict] = []
        if m.role == "assistant":
            first_call = True
            for p in m.content:
                if p.kind == "text":
                    if p.text:
                        parts.append({"text": p.text})
                elif p.kind == "thinking":
                    sig = p.signature
                    if not p.redacted and sig and sig.startswith(GEMINI_SIGNATURE_PREFIX):
                        parts.append({"text": p.text, "thought": True,
                                      "thoughtSignature": sig[len(GEMINI_SIGNATURE_PREFIX):]})
                elif p.kind == "tool_call":
                    names[p.id] = p.name
                    part: dict = {"functionCall": {"name": p.name, "args": parse_args(p.arguments_json, pm + ".tool_calls")}}
                    if p.signature:
                        part["thoughtSignature"] = p.signature
                    elif first_call and sig_fallback:
                        part["thoughtSignature"] = SKIP_SIGNATURE
                    first_call = False
                    parts.append(part)
            role = "model"
        else:
            for p in m.content:
                if p.kind == "text":
                    if p.text:
                        parts.append({"text": p.text})
                elif p.kind in ("image", "document"):
                    parts.append(_media_part(p, pm))
                elif p.kind == "tool_result":
                    name = p.name or names.get(p.tool_call_id)
                    if not name:
                        raise TranslationError(f"tool result {p.tool_call_id!r} has no matching tool call", pm)
                    parts.append(_function_response(p, name))
                    parts.extend(_media_part(c, pm) for c in p.content if c.kind != "text")
            role = "user"
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    body: dict = {"contents": contents}
    if req.system:
        body["systemInstruction"] = {"parts": [{"text": p.text} for p in req.system if p.text]}
    if req.tools:
        decls = []
        for t in req.tools:
            d: dict = {"name": t.name}
            if t.description:
                d["description"] = t.description
            if schema_mode == "openapi":
                d["parameters"] = openapi_schema(t.parameters)
            else:
                d["parametersJsonSchema"] = t.parameters
            decls.append(d)
        body["tools"] = [{"functionDeclarations": decls}]
        if req.parallel_tool_calls is False:
            dropped.append(source_param(req, "parallel_tool_calls"))
    tc = req.tool_choice
    if tc is not None and req.tools:
        if isinstance(tc, NamedToolChoice):
            fcc = {"mode": "ANY", "allowedFunctionNames": [tc.name]}
        else:
            fcc = {"mode": {"auto": "AUTO", "required": "ANY", "none": "NONE"}[tc]}
        body["toolConfig"] = {"functionCallingConfig": fcc}
    gc: dict = {}
    if req.max_tokens is not None:
        gc["maxOutputTokens"] = req.max_tokens
    if req.temperature is not None:
        gc["temperature"] = req.temperature
    if req.top_p is not None:
        gc["topP"] = req.top_p
    if req.top_k is not None:
        gc["topK"] = req.top_k
    if req.stop:
        if len(req.stop) > 5:
            dropped.append(source_param(req, "stop"))
        gc["stopSequences"] = req.stop[:5]
    rf = req.response_format
    if rf is not None and rf.type != "text":
        gc["responseMimeType"] = "application/json"
        if rf.type == "json_schema" and rf.schema is not None:
            if schema_mode == "openapi":
                gc["responseSchema"] = openapi_schema(rf.schema)
            else:
                gc["responseJsonSchema"] = rf.schema
    r = req.reasoning
    if r is not None:
        if not r.enabled or r.effort == "none":
            gc["thinkingConfig"] = {"thinkingBudget": 0}
        else:
            budget = r.budget_tokens if r.budget_tokens is not None else EFFORT_BUDGETS.get(r.effort or "medium", 8192)
            gc["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": True}
    for k, v in req.extra.items():
        if k in _GEN_EXTRAS and req.source_format in ("openai_chat", "responses") and v is not None:
            gc[_GEN_EXTRAS[k]] = v
        elif not is_neutral(k, v):
            dropped.append(k)
    if gc:
        body["generationConfig"] = gc
    if req.metadata:  # (Gemini has no end-user field either; `user` is not worth reporting)
        dropped.append("metadata")
    return body, dropped


# --- request: client → canonical (symmetry) ----------------------------------------------------

def _parts_in(parts: list, param: str, role: str, ids: list[tuple[str, str]]) -> list:
    out: list = []
    for i, p in enumerate(parts):
        pp = f"{param}[{i}]"
        p = req_dict(p, pp)
        if "text" in p:
            text = req_str(p["text"], pp + ".text")
            if p.get("thought"):
                sig = p.get("thoughtSignature")
                out.append(Thinking(text, GEMINI_SIGNATURE_PREFIX + sig if isinstance(sig, str) else None))
            else:
                out.append(Text(text))
        elif "inlineData" in p:
            d = req_dict(p["inlineData"], pp + ".inlineData")
            mime = req_str(d.get("mimeType"), pp + ".inlineData.mimeType")
            # proto bytes in JSON may be URL-safe base64 (google-genai sends it so); others want standard
            data = req_str(d.get("data"), pp + ".inlineData.data").replace("-", "+").replace("_", "/")
            out.append(Image(data=data, media_type=mime) if mime.startswith("image/") else Document(data=data, media_type=mime))
        elif "fileData" in p:
            d = req_dict(p["fileData"], pp + ".fileData")
            uri = req_str(d.get("fileUri"), pp + ".fileData.fileUri")
            mime = opt_str(d.get("mimeType"), pp + ".fileData.mimeType")
            out.append(Image(url=uri, media_type=mime) if mime and mime.startswith("image/") else Document(url=uri, media_type=mime))
        elif "functionCall" in p and role == "model":
            fc = req_dict(p["functionCall"], pp + ".functionCall")
            name = req_str(fc.get("name"), pp + ".functionCall.name")
            tid = fc.get("id") if isinstance(fc.get("id"), str) else f"call_{len(ids)}_{name}"
            ids.append((name, tid))
            out.append(ToolCall(tid, name, dumps_str(fc.get("args") or {}), opt_str(p.get("thoughtSignature"), pp)))
        elif "functionResponse" in p and role == "user":
            fr = req_dict(p["functionResponse"], pp + ".functionResponse")
            name = req_str(fr.get("name"), pp + ".functionResponse.name")
            tid = fr.get("id") if isinstance(fr.get("id"), str) else next(
                (t for n, t in reversed(ids) if n == name), f"call_{name}")
            text, is_error = _function_result_text(fr.get("response"))
            out.append(ToolResult(tid, [Text(text)], name, is_error))
        else:
            raise TranslationError("unsupported part", pp)
    return out


def _function_result_text(response: Any) -> tuple[str, bool]:
    """A functionResponse's `response` → (the result's text, is an error). Google documents
    `output` for the result and `error` for a failure; `result` is what `_function_response`
    (and many clients) write. A lone string there is the result itself; anything else is JSON."""
    if isinstance(response, dict) and len(response) == 1:
        (key, value), = response.items()
        if key in ("output", "result", "error"):
            return (value if isinstance(value, str) else dumps_str(value)), key == "error"
    return dumps_str(response or {}), False


# fields whose values are the client's own JSON (arguments, results, schemas): keys kept as sent
_FREE_FORM = frozenset(("args", "response", "parameters", "parametersJsonSchema", "responseSchema",
                        "responseJsonSchema", "response_json_schema"))


def _camel(key: str) -> str:
    if "_" not in key:
        return key
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def proto_keys(obj: Any) -> Any:
    """Gemini's JSON accepts proto field names in snake_case as well as lowerCamelCase (as any
    proto3 JSON parser does), and google-genai sends both (`fileData: {file_uri, mime_type}`):
    field names → lowerCamelCase, leaving the client's own JSON values alone."""
    if isinstance(obj, list):
        return [proto_keys(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for k, v in obj.items():
        ck = _camel(k) if isinstance(k, str) else k
        out[ck] = v if ck in _FREE_FORM else proto_keys(v)
    return out


def request_to_canonical(body: dict, model: str = "", *, stream: bool = False) -> CanonicalRequest:
    body = proto_keys(req_dict(body))
    req = CanonicalRequest(model=model, source_format=FORMAT, stream=stream, include_usage=stream)
    si = body.get("systemInstruction")
    if si is not None:
        req.system = [p for p in _parts_in(req_dict(si, "systemInstruction").get("parts") or [],
                                           "systemInstruction.parts", "system", []) if p.kind == "text"]
    ids: list[tuple[str, str]] = []
    for i, c in enumerate(req_list(body.get("contents"), "contents")):
        pc = f"contents[{i}]"
        c = req_dict(c, pc)
        role = c.get("role") or "user"
        if role not in ("user", "model", "function"):
            raise TranslationError(f"unknown role {role!r}", pc + ".role")
        role = "user" if role == "function" else role
        parts = _parts_in(req_list(c.get("parts"), pc + ".parts"), pc + ".parts", role, ids)
        if role == "model":
            req.messages.append(Message("assistant", parts))
            continue
        results = [p for p in parts if p.kind == "tool_result"]
        if results:
            req.messages.append(Message("tool", results))
        rest = [p for p in parts if p.kind != "tool_result"]
        if rest or not results:
            req.messages.append(Message("user", rest))
    for t in req_list(body.get("tools") or [], "tools"):
        for j, d in enumerate(req_dict(t, "tools").get("functionDeclarations") or []):
            d = req_dict(d, f"tools.functionDeclarations[{j}]")
            params = d.get("parametersJsonSchema", d.get("parameters")) or {"type": "object", "properties": {}}
            req.tools.append(ToolDef(req_str(d.get("name"), "tools.functionDeclarations.name"),
                                     opt_str(d.get("description"), "description"), req_dict(params, "parameters")))
    tcfg = body.get("toolConfig")
    if isinstance(tcfg, dict) and isinstance(tcfg.get("functionCallingConfig"), dict):
        fcc = tcfg["functionCallingConfig"]
        mode = opt_str(fcc.get("mode"), "toolConfig.functionCallingConfig.mode") or "AUTO"
        allowed = stop_list(fcc.get("allowedFunctionNames"), "toolConfig.functionCallingConfig.allowedFunctionNames")
        if mode == "ANY" and len(allowed) == 1:
            req.tool_choice = NamedToolChoice(allowed[0])
        else:
            req.tool_choice = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}.get(mode, "auto")
    gc = body.get("generationConfig")
    if gc is not None:
        gc = req_dict(gc, "generationConfig")
        req.max_tokens = opt_int(gc.get("maxOutputTokens"), "generationConfig.maxOutputTokens")
        req.temperature = opt_num(gc.get("temperature"), "generationConfig.temperature")
        req.top_p = opt_num(gc.get("topP"), "generationConfig.topP")
        req.top_k = opt_int(gc.get("topK"), "generationConfig.topK")
        req.stop = stop_list(gc.get("stopSequences"), "generationConfig.stopSequences")
        if gc.get("responseMimeType") == "application/json":
            schema = gc.get("responseJsonSchema", gc.get("responseSchema"))
            req.response_format = ResponseFormat("json_schema", schema=schema) if isinstance(schema, dict) \
                else ResponseFormat("json_object")
        tc = gc.get("thinkingConfig")
        if isinstance(tc, dict):
            budget = opt_int(tc.get("thinkingBudget"), "generationConfig.thinkingConfig.thinkingBudget")
            level = opt_str(tc.get("thinkingLevel"), "generationConfig.thinkingConfig.thinkingLevel")
            req.reasoning = Reasoning(effort=level.lower() if level else None,
                                      budget_tokens=budget if budget and budget > 0 else None,
                                      enabled=budget != 0)
        for key in ("seed", "presencePenalty", "frequencyPenalty", "candidateCount", "responseLogprobs", "logprobs"):
            if key in gc:
                req.extra[key] = gc[key]
    for key in ("safetySettings", "cachedContent"):
        if key in body:
            req.extra[key] = body[key]
    return req


# --- response ---------------------------------------------------------------------------------

def usage_to_canonical(um: Any) -> Usage:
    """Gemini `usageMetadata` → canonical. Counts are checked (`usage.CountReader`)."""
    if not isinstance(um, dict):
        return Usage()
    read = CountReader()
    prompt = read(um, "promptTokenCount")
    cand = read(um, "candidatesTokenCount")
    thoughts = read.count(um, "thoughtsTokenCount")
    return read.finish(Usage(
        input_tokens=prompt + read.count(um, "toolUsePromptTokenCount") if prompt is not None else None,
        output_tokens=(cand or 0) + thoughts if (cand is not None or thoughts) else None,
        cached_tokens=read.count(um, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    ))


def usage_from_canonical(u: Usage) -> dict:
    inp = u.input_tokens or 0
    out = u.output_tokens or 0
    d = {"promptTokenCount": inp, "candidatesTokenCount": out - u.reasoning_tokens, "totalTokenCount": inp + out}
    if u.cached_tokens:
        d["cachedContentTokenCount"] = u.cached_tokens
    if u.reasoning_tokens:
        d["thoughtsTokenCount"] = u.reasoning_tokens
    return d


def _tool_call_id(fc: dict, response_id: str, n: int) -> str:
    fid = fc.get("id")
    if isinstance(fid, str) and fid:
        return fid
    return f"call_{response_id}_{n}" if response_id else new_id("call_")


def response_to_canonical(body: dict) -> CanonicalResponse:
    body = req_dict(body, "response")
    rid = str(body.get("responseId") or "")
    cands = body.get("candidates")
    content: list = []
    stop = "end_turn"
    if isinstance(cands, list) and cands and isinstance(cands[0], dict):
        cand = cands[0]
        c = cand.get("content") if isinstance(cand.get("content"), dict) else {}
        n = 0
        for p in as_list(c.get("parts")):
            if not isinstance(p, dict):
                continue
            if isinstance(p.get("functionCall"), dict):
                fc = p["functionCall"]
                sig = p.get("thoughtSignature") if isinstance(p.get("thoughtSignature"), str) else None
                content.append(ToolCall(_tool_call_id(fc, rid, n), str(fc.get("name") or ""),
                                        dumps_str(fc.get("args") or {}), sig))
                n += 1
            elif isinstance(p.get("text"), str):
                if p.get("thought"):
                    sig = p.get("thoughtSignature")
                    content.append(Thinking(p["text"], GEMINI_SIGNATURE_PREFIX + sig if isinstance(sig, str) else None))
                elif p["text"]:
                    if content and content[-1].kind == "text":  # one block, as in the stream
                        content[-1] = Text(content[-1].text + p["text"])
                    else:
                        content.append(Text(p["text"]))
        stop = stop_reasons.from_gemini(cand.get("finishReason"), n > 0) or ("tool_use" if n else "end_turn")
    elif isinstance(body.get("promptFeedback"), dict) and body["promptFeedback"].get("blockReason"):
        stop = "content_filter"
    else:
        raise TranslationError("provider response has no candidates", "candidates")
    return CanonicalResponse(id=rid or new_id("gen-"), model=str(body.get("modelVersion") or ""), content=content,
                             stop_reason=stop, usage=usage_to_canonical(body.get("usageMetadata")))


def _part_out(p) -> dict | None:
    if p.kind == "text":
        return {"text": p.text}
    if p.kind == "thinking":
        if p.redacted:
            return None
        d: dict = {"text": p.text, "thought": True}
        if p.signature and p.signature.startswith(GEMINI_SIGNATURE_PREFIX):
            d["thoughtSignature"] = p.signature[len(GEMINI_SIGNATURE_PREFIX):]
        return d
    d = {"functionCall": {"id": p.id, "name": p.name, "args": arguments_object(p.arguments_json)}}
    if p.signature:
        d["thoughtSignature"] = p.signature
    return d



def response_from_canonical(resp: CanonicalResponse, *, model: str | None = None) -> dict:
    parts = [d for d in (_part_out(p) for p in resp.content) if d is not None]
    return {
        "candidates": [{"content": {"role": "model", "parts": parts},
                        "finishReason": stop_reasons.to_gemini(resp.stop_reason), "index": 0}],
        "usageMetadata": usage_from_canonical(resp.usage),
        "modelVersion": model or resp.model,
        "responseId": resp.id,
    }


def __getattr__(name: str):  # lazy re-export: gemini_stream imports this module
    if name in ("StreamParser", "StreamWriter"):
        from tollway.formats import gemini_stream
        return getattr(gemini_stream, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

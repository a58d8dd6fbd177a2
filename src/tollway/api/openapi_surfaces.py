"""The OpenAPI entries of the client surfaces besides /v1: Gemini-native, Azure-style, OpenAI without
`/v1`, the model list by id, and Realtime. Merged into `openapi.openapi_document()`."""

from __future__ import annotations

from typing import Any, Callable

_REF = "#/components/schemas/"
GEMINI_VERBS = ("generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents")
_GEMINI_SECURITY = [{"googApiKey": []}, {"googKeyQuery": []}, {"bearer": []}, {"tollwayKey": []}]
_AZURE_SECURITY = [{"azureApiKey": []}, {"bearer": []}, {"tollwayKey": []}]


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _model_get(summary: str, security: list, error: str) -> dict[str, Any]:
    return {"summary": summary, "security": security, "parameters": [_path_param("model")],
            "responses": {"200": {"description": "The model, in the asking client's shape", "content": {
                "application/json": {"schema": {"type": "object"}}}},
                "404": {"description": "Not routable by this Tollway", "content": {
                    "application/json": {"schema": {"$ref": _REF + error}}}}}}


def surface_paths(proxy_op: Callable[..., dict[str, Any]], model_list: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    # Gemini-native: google-genai asks /v1beta/... or (its default) /v1/...
    for prefix in ("/v1beta", "/v1"):
        for verb in GEMINI_VERBS:
            op = proxy_op(f"Gemini {verb} for any routable model (Gemini providers: bytes as they are; "
                          "others translated)", "gemini", f"Gemini {verb} request")
            op["parameters"] = [_path_param("model"), *op["parameters"]]
            if verb == "streamGenerateContent":
                op["parameters"].append({"name": "alt", "in": "query", "required": False, "schema": {"const": "sse"},
                                         "description": "sse: an SSE stream; absent: one JSON array, streamed"})
            op["security"] = _GEMINI_SECURITY
            op["requestBody"]["content"]["application/json"]["schema"] = {
                "type": "object", "description": f"Gemini's own {verb} body; the model is in the path."}
            paths[f"{prefix}/models/{{model}}:{verb}"] = {"post": op}
            scoped = {**op, "summary": f"Project-scoped Gemini {verb} (the slug wins over project headers)",
                      "parameters": [_path_param("slug"), *op["parameters"]]}
            paths[f"/projects/{{slug}}{prefix}/models/{{model}}:{verb}"] = {"post": scoped}
    any_key = model_list["security"]  # the model lists: a key wherever any SDK puts its own
    paths["/v1beta/models"] = {"get": {
        "summary": "Models Tollway can route, in Gemini's shape (pageSize, pageToken)", "security": any_key,
        "parameters": [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                       for n in ("pageSize", "pageToken")],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"models": {"type": "array", "items": {"type": "object"}},
                                             "nextPageToken": {"type": "string"}}}}}}}}}
    paths["/v1beta/models/{model}"] = {"get": _model_get("One model, in Gemini's shape", any_key, "GeminiError")}
    paths["/v1/models/{model}"] = {"get": _model_get(
        "One routable model: OpenAI's shape; Anthropic's with anthropic-version; Gemini's with x-goog-api-key",
        any_key, "OpenAIError")}
    # Azure OpenAI's surface: the deployment is the model or alias
    for op_path, schema in (("chat/completions", "CreateChatCompletionRequest"),
                            ("completions", "CreateCompletionRequest"), ("embeddings", "CreateEmbeddingRequest")):
        op = proxy_op(f"Azure-style {op_path}: the deployment names the model or alias", "openai", schema)
        op["parameters"] = [_path_param("deployment"), {"name": "api-version", "in": "query", "required": False,
                                                        "schema": {"type": "string"}}, *op["parameters"]]
        op["security"] = _AZURE_SECURITY
        paths[f"/openai/deployments/{{deployment}}/{op_path}"] = {"post": op}
    for op_path, schema in (("chat/completions", "CreateChatCompletionRequest"),
                            ("completions", "CreateCompletionRequest"), ("embeddings", "CreateEmbeddingRequest"),
                            ("responses", "CreateResponse")):
        op = proxy_op(f"Azure OpenAI v1 API {op_path}", "openai", schema)
        op["security"] = _AZURE_SECURITY
        paths[f"/openai/v1/{op_path}"] = {"post": op}
    op = proxy_op("Azure OpenAI Responses (AzureOpenAI client)", "openai", "CreateResponse")
    op["security"] = _AZURE_SECURITY
    paths["/openai/responses"] = {"post": op}
    for p in ("/openai/models", "/openai/v1/models", "/models"):
        paths[p] = {"get": {**model_list, "summary": "Models Tollway can route (as GET /v1/models)"}}
    # OpenAI's routes without /v1
    for op_path, schema in (("chat/completions", "CreateChatCompletionRequest"),
                            ("completions", "CreateCompletionRequest"), ("embeddings", "CreateEmbeddingRequest"),
                            ("responses", "CreateResponse")):
        paths[f"/{op_path}"] = {"post": proxy_op(f"/v1/{op_path} without the /v1 prefix", "openai", schema)}
    # Realtime
    realtime = {"get": {
        "summary": "Realtime over WebSocket, relayed to the OpenAI or Azure provider (also /realtime, "
                   "/openai/realtime?deployment=, /openai/v1/realtime). Tollway key in Authorization, api-key, "
                   "X-Tollway-Key or the openai-insecure-api-key.<key> subprotocol. One usage record per "
                   "response.done. Refusals: a Realtime error event, then close 1008 (request) or 1011 (provider).",
        "security": [{"bearer": []}, {"azureApiKey": []}, {"tollwayKey": []}],
        "parameters": [{"name": "model", "in": "query", "required": False, "schema": {"type": "string"}},
                       {"name": "deployment", "in": "query", "required": False, "schema": {"type": "string"}}],
        "responses": {"101": {"description": "Switching Protocols: the session is relayed"},
                      "426": {"description": "Not a WebSocket upgrade", "content": {
                          "application/json": {"schema": {"$ref": _REF + "OpenAIError"}}}}}}}
    for p in ("/v1/realtime", "/realtime", "/openai/realtime", "/openai/v1/realtime"):
        paths[p] = realtime
    return paths


SECURITY_SCHEMES: dict[str, Any] = {
    "googApiKey": {"type": "apiKey", "in": "header", "name": "x-goog-api-key"},
    "googKeyQuery": {"type": "apiKey", "in": "query", "name": "key"},
    "azureApiKey": {"type": "apiKey", "in": "header", "name": "api-key"},
}
GEMINI_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message", "status"], "properties": {
        "code": {"type": "integer"}, "message": {"type": "string"}, "status": {"type": "string"}}}}}

"""Azure OpenAI: the OpenAI wire format behind per-model deployments.

Chat, completions and embeddings go to `{base}/openai/deployments/{deployment}/{op}?api-version=`;
Responses to the v1 API `{base}/openai/v1/responses` with the deployment as the body's model.
The key goes in `api-key`. Everything else (usage injection and stripping, usage parsing,
watchers) is OpenAI's, reused from `providers.openai`.

Azure's streams open with a chunk of their own: empty `choices`, `model` and `id`, carrying
only `prompt_filter_results`. The watcher relays it untouched but does not count it as the
first token, nor take its empty model for the model served.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tollway.config import ProviderSettings
from tollway.counting import OutputTally
from tollway.providers.base import Endpoint, PreparedCall, loads_object
from tollway.providers.openai import ChatStreamWatcher, OpenAIProvider, ResponsesStreamWatcher
from tollway.sse import SSEEvent

_DEPLOYMENT_OPS = {
    Endpoint.CHAT: "chat/completions",
    Endpoint.COMPLETIONS: "completions",
    Endpoint.EMBEDDINGS: "embeddings",
}
_PROMPT_FILTER = b'"prompt_filter_results"'


def _is_prompt_filter_event(data: bytes) -> bool:
    """Azure's leading annotation chunk: prompt_filter_results and no choices or usage."""
    if _PROMPT_FILTER not in data:
        return False
    obj = loads_object(data)
    return (obj is not None and "prompt_filter_results" in obj and not obj.get("choices")
            and not obj.get("usage"))


class AzureChatStreamWatcher(ChatStreamWatcher):
    """OpenAI's chat watcher, minus Azure's leading prompt-filter chunk(s)."""

    __slots__ = ()

    def relay(self, events: list[SSEEvent]) -> bytes:
        if self.first_token:
            return super().relay(events)
        skip = 0
        while skip < len(events) and _is_prompt_filter_event(events[skip].data):
            skip += 1
        if not skip:
            return super().relay(events)
        head = b"".join(ev.raw for ev in events[:skip])
        rest = events[skip:]
        return head + super().relay(rest) if rest else head

    def _note_model(self, obj: dict[str, Any]) -> None:
        super()._note_model(obj)
        if not self.model_served:  # never record "" as the model served
            self.model_served = None


class AzureResponsesStreamWatcher(ResponsesStreamWatcher):
    __slots__ = ("_provider",)

    def __init__(self, provider: "AzureOpenAIProvider", tally: OutputTally | None = None) -> None:
        super().__init__(tally)
        self._provider = provider

    def relay(self, events: list[SSEEvent]) -> bytes:
        out = super().relay(events)
        if self.model_served:
            self.model_served = self._provider.served_model(self.model_served)
        return out


class AzureOpenAIProvider(OpenAIProvider):
    wire_format = "openai"
    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.RESPONSES})
    translate_options: dict[str, Any] = {}

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        # the resource endpoint; also accept the URLs Azure's portal shows (…/openai, …/openai/v1)
        for suffix in ("/openai/v1", "/openai"):
            if self._base.endswith(suffix):
                self._base = self._base[: -len(suffix)]
                break
        self._version = quote(settings.api_version, safe="")
        self._models_by_deployment = {d: m for m, d in settings.deployments.items() if d != m}

    def __repr__(self) -> str:
        return f"AzureOpenAIProvider(id={self.id!r}, base_url={self._base!r})"

    def auth_headers(self, api_key: str | None = None) -> dict[str, str]:
        key = api_key or (self.settings.api_key.get_secret_value() if self.settings.api_key else None)
        return {"api-key": key} if key else {}

    def deployment(self, model: str) -> str:
        return self.settings.deployments.get(model, model)

    def url(self, endpoint: Endpoint, deployment: str) -> str:
        if endpoint == Endpoint.RESPONSES:
            return f"{self._base}/openai/v1/responses"
        op = _DEPLOYMENT_OPS[endpoint]
        return f"{self._base}/openai/deployments/{quote(deployment, safe='')}/{op}?api-version={self._version}"

    def prepare(self, endpoint: Endpoint, body: dict[str, Any], raw: bytes, upstream_model: str,
                stream: bool, client_headers: dict[bytes, bytes]) -> PreparedCall:
        deployment = self.deployment(upstream_model)
        # The v1 Responses API routes by the body's model, which must name the deployment; the
        # deployment routes ignore it, so it keeps the model name (and the bytes stay untouched
        # unless an alias renamed the model). OpenAI's prepare() does the usage-option edit.
        named = deployment if endpoint == Endpoint.RESPONSES else upstream_model
        call = super().prepare(endpoint, body, raw, named, stream, client_headers)
        call.request.url = self.url(endpoint, deployment)
        return call

    def served_model(self, served: str) -> str:
        """The model a response names, with a deployment name mapped back to its model (for
        pricing: a deployment is not a model)."""
        return self._models_by_deployment.get(served, served)

    def stream_watcher(self, endpoint: Endpoint, injected_usage_option: bool, tally: OutputTally | None = None):
        if endpoint == Endpoint.RESPONSES:
            return AzureResponsesStreamWatcher(self, tally)
        return AzureChatStreamWatcher(strip_usage=injected_usage_option, tally=tally)

    def passthrough_url(self, subpath: str, query: bytes) -> str:
        url = f"{self._base}/openai{subpath}"
        return url + "?" + query.decode("latin-1") if query else url

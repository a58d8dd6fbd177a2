"""Sanitization and the cache attacked the way a careless or hostile client would: secrets
spelt with JSON escapes, forwarded by policy, pasted as documents; answers that leak, cached
and replayed to a caller whose policy checks answers. What is asserted is what a user sees
(the SDK's answer, the stored record and body) and what the provider received."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.fakes.provider import FakeProvider
from tests.fakes.scenario import LEAKED_KEY
from tests.harness import MASTER_KEY, Tollway, anthropic_client, openai_client, standard_config

AWS = "AKIA" + "ZT3XGQWM7N4RB2VC"  # FAKE, in AWS's format
ESCAPED = "\\u0041KIA" + "ZT3XGQWM7N4RB2VC"  # the same key as a client's JSON may spell it
KEYS = {
    # refuses, and keeps bodies: the stored body of a refused request must not hold the secret
    "gate": {"sanitization": {"compliance_gate": True}, "log_bodies": True},
    # scans but forwards credentials as they are (redact_credentials = false), keeps bodies
    "fwd": {"sanitization": {"redact_credentials": False}, "log_bodies": True},
    # two keys of one project sharing the cache: one checks no answers, the other blocks leaks
    "lax": {"sanitization": {"output": "off"}, "project": "shared"},
    "strict": {"sanitization": {"output": "block"}, "project": "shared"},
    # answers pass unchecked (fast path: the provider's events as they are), bodies are kept: the
    # stored answer must still lose a key split across events
    "logged": {"sanitization": {"output": "off"}, "log_bodies": True},
}


class FragmentingProxy:
    """TCP in front of the fake provider that hands its answers back a few bytes per segment
    (TCP_NODELAY, a pause between sends): every SSE event, and every key in one, arrives cut."""

    def __init__(self, target: tuple[str, int], piece: int = 5) -> None:
        self.target, self.piece = target, piece
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, upstream, 65536), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.piece), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, piece: int) -> None:
        try:
            while data := src.recv(65536):
                for i in range(0, len(data), piece):
                    dst.sendall(data[i:i + piece])
                    if piece < 65536:
                        time.sleep(0.0002)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    host, port = fake.url.removeprefix("http://").split(":")
    frag = FragmentingProxy((host, int(port)))
    frag_url = f"http://127.0.0.1:{frag.port}"
    cfg = standard_config(fake.url)
    cfg["providers"].append({"id": "gemini", "kind": "gemini", "base_url": fake.url, "api_key": "fake-gemini-key",
                             "models": ["gemini-*"]})
    cfg["providers"] += [
        {"id": "frag-openai", "kind": "openai", "base_url": frag_url + "/v1", "api_key": "sk-f", "models": ["frag-gpt"]},
        {"id": "frag-anthropic", "kind": "anthropic", "base_url": frag_url, "api_key": "sk-ant-f",
         "models": ["frag-claude"]},
        {"id": "frag-gemini", "kind": "gemini", "base_url": frag_url, "api_key": "g", "models": ["frag-gemini"]}]
    cfg["sanitization"] = {"enabled": True, "output": "redact"}
    cfg["cache"] = {"mode": "exact", "scope": "project"}
    cfg["keys"] = [{"id": name, "key": f"tw-{name}-key", **over} for name, over in KEYS.items()]
    t = Tollway(tmp_path_factory.mktemp("guard-attacks"), cfg)
    yield t
    t.stop()
    frag.close()


def post_raw(tw: Tollway, key: str, raw: bytes) -> tuple[int, dict, str]:
    req = urllib.request.Request(tw.url + "/v1/chat/completions", method="POST", data=raw,
                                 headers={"Authorization": f"Bearer {key}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read()), r.headers["x-tollway-trace-id"]
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers["x-tollway-trace-id"]


def chat_bytes(text_json: str, model: str = "gpt-4o-mini") -> bytes:
    """A chat body whose user content is `text_json` verbatim (JSON escapes kept as written)."""
    return ('{"model": "%s", "messages": [{"role": "user", "content": "%s"}]}' % (model, text_json)).encode()


def test_a_refused_prompt_leaves_no_secret_in_the_stored_body_even_json_escaped(tw: Tollway, fake: FakeProvider) -> None:
    n = len(fake.requests)
    status, body, trace = post_raw(tw, "tw-gate-key", chat_bytes(f"why does {ESCAPED} fail?"))
    assert status == 403 and "AWS_ACCESS_KEY" in body["error"]["message"]
    assert len(fake.requests) == n
    rec = tw.record(trace)
    stored = rec["bodies"]["request"]
    assert "[REDACTED:AWS_ACCESS_KEY]" in stored
    assert "ZT3XGQWM7N4RB2VC" not in stored and AWS not in json.dumps(rec)


def test_a_forwarded_secret_reaches_the_provider_but_not_the_store_nor_the_cache(tw: Tollway,
                                                                                 fake: FakeProvider) -> None:
    raw = chat_bytes(f"rotate {ESCAPED} please")
    for attempt in range(2):
        n = len(fake.requests)
        status, _, trace = post_raw(tw, "tw-fwd-key", raw)
        assert status == 200
        assert AWS in fake.wait_for_requests(n + 1)[n].text  # the policy forwards credentials
        rec = tw.record(trace)
        assert rec["guard_findings"] == {"request": {"AWS_ACCESS_KEY": 1}, "request_action": "forwarded"}
        assert rec["cache"] == "miss", attempt  # never stored: the answer could echo the secret
        stored = rec["bodies"]["request"]
        assert "[REDACTED:AWS_ACCESS_KEY]" in stored and "ZT3XGQWM7N4RB2VC" not in stored
    assert "ZT3XGQWM7N4RB2VC" not in tw.log()


def test_an_anthropic_text_document_is_scanned(tw: Tollway, fake: FakeProvider) -> None:
    n = len(fake.requests)
    anthropic_client(tw).messages.create(
        model="claude-3-5-haiku-latest", max_tokens=20,
        messages=[{"role": "user", "content": [
            {"type": "document", "title": "notes", "source": {"type": "text", "media_type": "text/plain",
                                                              "data": f"deploy key {AWS}"}},
            {"type": "text", "text": "summarise the document"}]}])
    sent = fake.wait_for_requests(n + 1)[n].text
    assert "[REDACTED:AWS_ACCESS_KEY]" in sent and AWS not in sent


def test_an_answer_the_output_check_redacted_is_never_cached(tw: Tollway) -> None:
    for _ in range(2):
        raw = openai_client(tw).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[leak]] cache me?"}])
        assert raw.parse().choices[0].message.content == "Your key is [REDACTED:AWS_ACCESS_KEY] keep it safe."
        assert raw.headers["x-tollway-cache"] == "miss"
    again = openai_client(tw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "a clean question, cache me"}])
    again = openai_client(tw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "a clean question, cache me"}])
    assert again.headers["x-tollway-cache"] == "hit"  # the cache itself is on


def test_a_leak_cached_unchecked_is_not_replayed_to_a_key_whose_policy_blocks_it(tw: Tollway,
                                                                                 fake: FakeProvider) -> None:
    msgs = [{"role": "user", "content": "[[leak]] shared project question"}]
    for _ in range(2):  # the lax key stores the answer (no output check), then hits it
        raw = openai_client(tw, "tw-lax-key").chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=msgs)
        assert LEAKED_KEY in raw.parse().choices[0].message.content
    assert raw.headers["x-tollway-cache"] == "hit"
    import openai

    n = len(fake.requests)
    with pytest.raises(openai.PermissionDeniedError) as ei:
        openai_client(tw, "tw-strict-key").chat.completions.create(model="gpt-4o-mini", messages=msgs)
    assert LEAKED_KEY not in str(ei.value) and "AWS_ACCESS_KEY" in str(ei.value)
    assert len(fake.requests) == n + 1  # asked the provider, checked, blocked: not served from the cache


@pytest.mark.parametrize("model", ["gemini-2.0-flash", "gpt-4o-mini", "claude-3-5-haiku-latest"])
def test_a_blocked_stream_lets_no_part_of_the_key_out_whatever_the_provider(tw: Tollway, model: str) -> None:
    """Gemini repeats its usage in every chunk; that must not release a held-back half key."""
    import openai

    text = ""
    with pytest.raises(openai.APIError):
        with openai_client(tw, "tw-strict-key").chat.completions.with_streaming_response.create(
                model=model, stream=True, messages=[{"role": "user", "content": f"[[leak]] {model} stream"}]) as raw:
            for chunk in raw.parse():
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
    assert text == "Your key is "
    rec = tw.records(key_id="strict", limit=1)[0]
    assert rec["error_type"] == "output_blocked"


@pytest.mark.parametrize("stream", [False, True])
def test_legacy_completions_answers_are_checked_too(tw: Tollway, stream: bool) -> None:
    """/v1/completions has no canonical form: the check reads the relayed bytes."""
    import openai

    c = openai_client(tw)
    if stream:
        chunks = list(c.completions.create(model="gpt-4o-mini", prompt=f"[[leak]] legacy {stream}", stream=True))
        text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    else:
        text = c.completions.create(model="gpt-4o-mini", prompt=f"[[leak]] legacy {stream}").choices[0].text
    assert text == "Your key is [REDACTED:AWS_ACCESS_KEY] keep it safe."
    rec = tw.records(limit=1)[0]
    assert rec["guard_findings"] == {"response": {"AWS_ACCESS_KEY": 1}, "response_action": "redacted"}
    strict = openai_client(tw, "tw-strict-key")
    sent = ""
    with pytest.raises(openai.APIError) as ei:
        if stream:
            for ch in strict.completions.create(model="gpt-4o-mini", prompt=f"[[leak]] strict {stream}", stream=True):
                sent += "".join(c.text for c in ch.choices)
        else:
            strict.completions.create(model="gpt-4o-mini", prompt=f"[[leak]] strict {stream}")
    assert "AWS_ACCESS_KEY" in str(ei.value) and LEAKED_KEY[:6] not in sent
    assert tw.records(key_id="strict", limit=1)[0]["error_type"] == "output_blocked"


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
def test_a_leak_split_across_stream_events_is_not_kept_in_the_stored_body(tw: Tollway, fmt: str) -> None:
    if fmt == "openai":
        with openai_client(tw, "tw-logged-key").chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "[[leak]] kept body"}]) as raw:
            trace = raw.headers["x-tollway-trace-id"]
            text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        with anthropic_client(tw, "tw-logged-key").messages.with_streaming_response.create(
                model="claude-3-5-haiku-latest", max_tokens=50, stream=True,
                messages=[{"role": "user", "content": "[[leak]] kept body"}]) as raw:
            trace = raw.headers["x-tollway-trace-id"]
            text = "".join(e.delta.text for e in raw.parse()
                           if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert LEAKED_KEY in text  # output = off: the client gets the answer as it is
    stored = tw.record(trace)["bodies"]["response"]
    assert "[REDACTED:AWS_ACCESS_KEY]" in stored
    for piece in (LEAKED_KEY[:6], LEAKED_KEY[6:14], LEAKED_KEY[14:]):
        assert piece not in stored


def test_embedding_inputs_are_scanned_in_openai_and_gemini_shapes(tw: Tollway, fake: FakeProvider) -> None:
    n = len(fake.requests)
    openai_client(tw).embeddings.create(model="text-embedding-3-small", input=["fine", f"key {AWS} here"])
    sent = fake.wait_for_requests(n + 1)[n].text
    assert "[REDACTED:AWS_ACCESS_KEY]" in sent and AWS not in sent
    n = len(fake.requests)
    req = urllib.request.Request(tw.url + "/v1beta/models/gemini-2.0-flash:embedContent", method="POST",
                                 data=json.dumps({"content": {"parts": [{"text": f"key {AWS}"}]}}).encode(),
                                 headers={"x-goog-api-key": MASTER_KEY, "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    sent = fake.wait_for_requests(n + 1)[n].text
    assert "[REDACTED:AWS_ACCESS_KEY]" in sent and AWS not in sent


@pytest.mark.parametrize("model", ["frag-gpt", "frag-claude", "frag-gemini"])
@pytest.mark.parametrize("client", ["chat", "anthropic", "responses"])
def test_a_key_cut_across_tcp_segments_and_events_is_redacted(tw: Tollway, model: str, client: str) -> None:
    """The provider's stream arrives five bytes at a time: events, JSON and the key all cut."""
    prompt = f"[[leak]] tcp {model} {client}"
    if client == "chat":
        chunks = list(openai_client(tw).chat.completions.create(
            model=model, stream=True, messages=[{"role": "user", "content": prompt}]))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    elif client == "anthropic":
        with anthropic_client(tw).messages.stream(model=model, max_tokens=50,
                                                  messages=[{"role": "user", "content": prompt}]) as st:
            text = "".join(st.text_stream)
    else:
        events = list(openai_client(tw).responses.create(model=model, input=prompt, stream=True))
        assert events[-1].type == "response.completed"
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Your key is [REDACTED:AWS_ACCESS_KEY] keep it safe."


def test_the_master_key_still_works(tw: Tollway) -> None:
    assert openai_client(tw, MASTER_KEY).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content


def test_a_forwarded_secret_is_not_kept_in_a_stored_responses_conversation(tw: Tollway, fake: FakeProvider) -> None:
    client = openai_client(tw, "tw-fwd-key")
    n = len(fake.requests)
    resp = client.responses.create(model="claude-3-5-haiku-latest", input=f"rotate {AWS} please")
    assert AWS in fake.wait_for_requests(n + 1)[n].text  # the policy forwards credentials
    items = client.responses.input_items.list(resp.id)
    stored = json.dumps([i.model_dump() for i in items.data])
    assert "[REDACTED:AWS_ACCESS_KEY]" in stored and AWS not in stored

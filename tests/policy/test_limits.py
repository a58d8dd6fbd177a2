"""Rate, token and concurrency limits, allow-lists and per-key caps on a live Tollway."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway, anthropic_client, openai_client, standard_config
from tests.policy.support import HELLO

RPM_KEY, TPM_KEY, SLOT_KEY, QUEUE_KEY, NARROW_KEY = ("tw-rpm-key", "tw-tpm-key", "tw-slot-key", "tw-queue-key",
                                                    "tw-narrow-key")


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = standard_config(fake.url)
    cfg["keys"] += [
        {"id": "rpm", "key": RPM_KEY, "rpm": 3},
        {"id": "tpm", "key": TPM_KEY, "tpm": 60},
        {"id": "slot", "key": SLOT_KEY, "max_concurrency": 2},
        {"id": "queue", "key": QUEUE_KEY, "max_concurrency": 1, "queue_timeout_ms": 5000},
        {"id": "narrow", "key": NARROW_KEY, "models": ["gpt-4o*", "claude-3-5-*"], "max_tokens": 100,
         "max_body_bytes": 2000},
    ]
    t = Tollway(tmp_path_factory.mktemp("limits"), cfg)
    yield t
    t.stop()


def test_rpm_limit_with_headers_and_retry_after(tw: Tollway, fake: FakeProvider) -> None:
    client = openai_client(tw, RPM_KEY)
    remaining = []
    for _ in range(3):
        r = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
        assert r.headers["x-ratelimit-limit-requests"] == "3"  # Tollway's, not the provider's 10000
        remaining.append(int(r.headers["x-ratelimit-remaining-requests"]))
        assert r.headers["x-ratelimit-reset-requests"].endswith("s")
    assert remaining == [2, 1, 0]
    before = len(fake.requests)
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    h = e.value.response.headers
    assert 1 <= int(h["retry-after"]) <= 20 and int(h["retry-after-ms"]) > 0
    assert h["x-ratelimit-remaining-requests"] == "0"
    assert e.value.body["code"] == "rate_limit_exceeded" and "requests per minute" in e.value.message
    assert len(fake.requests) == before  # never reached the provider
    # the Anthropic route answers in its own shape
    with pytest.raises(Exception) as e2:
        anthropic_client(tw, RPM_KEY).messages.create(model="claude-3-5-haiku-latest", max_tokens=10, messages=HELLO)
    assert e2.value.status_code == 429 and e2.value.body["type"] == "error"
    assert e2.value.body["error"]["type"] == "rate_limit_error"


def test_tpm_limit_counts_input_and_requested_output(tw: Tollway) -> None:
    client = openai_client(tw, TPM_KEY)
    r = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO, max_tokens=20)
    assert r.headers["x-ratelimit-limit-tokens"] == "60"
    assert int(r.headers["x-ratelimit-remaining-tokens"]) == 60 - 28  # 8 prompt + 20 asked
    with pytest.raises(openai.RateLimitError) as e:  # the first call used 18 (settled), 8 + 40 more is too many
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=40)
    assert "tokens per minute" in e.value.message
    with pytest.raises(openai.RateLimitError) as e:  # more than the whole limit: retrying cannot help
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=500)
    assert e.value.body["code"] == "tokens_over_limit"


def test_max_concurrency_without_queue_refuses_at_once(tw: Tollway) -> None:
    client = openai_client(tw, SLOT_KEY)
    slow = [{"role": "user", "content": "Hi [[delay:0.8]]"}]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(client.chat.completions.with_raw_response.create, model="gpt-4o-mini", messages=slow)
                   for _ in range(4)]
        outcomes = []
        for f in futures:
            try:
                outcomes.append(f.result().status_code)
            except openai.RateLimitError as e:
                assert e.body["code"] == "concurrency_limit_exceeded"
                outcomes.append(429)
    assert sorted(outcomes) == [200, 200, 429, 429]
    assert client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO).status_code == 200


def test_queue_timeout_waits_first_come_first_served(tw: Tollway, fake: FakeProvider) -> None:
    client = openai_client(tw, QUEUE_KEY)
    order: list[int] = []
    lock = threading.Lock()

    def call(i: int) -> None:
        time.sleep(i * 0.1)  # arrive in order 0, 1, 2, 3
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": f"n{i} [[delay:0.3]]"}])
        with lock:
            order.append(i)

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(call, range(4)))
    assert order == [0, 1, 2, 3]  # one at a time, in arrival order
    assert time.monotonic() - t0 >= 1.2  # 4 x 0.3 s: they waited for each other


def test_queue_timeout_ends_in_a_429(fake: FakeProvider, tmp_path: Path) -> None:
    cfg = standard_config(fake.url)
    cfg["keys"].append({"id": "q", "key": "tw-q", "max_concurrency": 1, "queue_timeout_ms": 300})
    tw = Tollway(tmp_path, cfg)
    try:
        client = openai_client(tw, "tw-q")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(client.chat.completions.create, model="gpt-4o-mini",
                                messages=[{"role": "user", "content": "Hi [[delay:1.5]]"}])
            time.sleep(0.2)
            t0 = time.monotonic()
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            waited = time.monotonic() - t0
            first.result()
        assert 0.25 <= waited < 1.2
    finally:
        tw.stop()


def test_allow_list_max_tokens_and_body_size(tw: Tollway, fake: FakeProvider) -> None:
    client = openai_client(tw, NARROW_KEY)
    assert client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO).status_code == 200
    before = len(fake.requests)
    with pytest.raises(openai.PermissionDeniedError) as e:
        client.chat.completions.create(model="gpt-4.1-mini", messages=HELLO)
    assert "gpt-4o*" in e.value.message and "claude-3-5-*" in e.value.message
    assert e.value.body["code"] == "model_not_allowed"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=101)
    assert e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 3000}])
    assert e.value.status_code == 413
    assert len(fake.requests) == before
    # the master key is not limited by any of that
    assert openai_client(tw, MASTER_KEY).chat.completions.with_raw_response.create(
        model="gpt-4.1-mini", messages=HELLO).status_code == 200


def test_pass_through_routes_count_against_rpm(fake: FakeProvider, tmp_path: Path) -> None:
    cfg = standard_config(fake.url)
    cfg["keys"].append({"id": "pt", "key": "tw-pt", "rpm": 2})
    tw = Tollway(tmp_path, cfg)
    try:
        client = openai_client(tw, "tw-pt")
        for _ in range(2):
            client.files.list()
        with pytest.raises(openai.RateLimitError):
            client.files.list()
    finally:
        tw.stop()

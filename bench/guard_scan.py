"""Microbenchmark: CPU time of the sanitizer on a 4 KB prompt (the issue's budget: < 100 µs).

    python bench/guard_scan.py            # credentials, credentials + PII, a whole chat body, a stream

Measures process CPU time (time.process_time_ns), best and median of repeated batches, so a
busy machine inflates the median more than the best. Prompts: English prose with code, no
findings (the common case), and the same with one fake AWS key and one e-mail address.
"""

from __future__ import annotations

import statistics
import time

import orjson

from tollway.config import build_settings
from tollway.formats.stream import TextDelta
from tollway.guard.output import OutputCheck
from tollway.guard.sanitizer import Guard

PARAGRAPH = (
    "Our service reads its settings from config.toml at start-up; the retry policy backs off "
    "exponentially with jitter and gives up after five attempts. When the token bucket is empty "
    "the client waits for the refill interval. def retry(fn, attempts=5):\n    for i in range(attempts):\n"
    "        try: return fn()\n        except TimeoutError: time.sleep(2 ** i)\n"
    "Please review the function above and explain why the API key lookup is slow on cold starts. "
)


def prompt(size: int = 4096, with_findings: bool = False) -> str:
    text = (PARAGRAPH * (size // len(PARAGRAPH) + 1))[:size]
    if with_findings:
        text = text[:1000] + " AKIA" + "ZT3XGQWM7N4RB2VC " + text[1021:2000] + " jane.doe@example.com " + text[2022:]
    return text[:size]


def measure(fn, batches: int = 40, per: int = 50) -> tuple[float, float]:
    fn()
    samples = []
    for _ in range(batches):
        t0 = time.process_time_ns()
        for _ in range(per):
            fn()
        samples.append((time.process_time_ns() - t0) / per / 1000)
    return min(samples), statistics.median(samples)


def main() -> None:
    guard = Guard(build_settings({"sanitization": {"enabled": True, "redact_pii": True}}, {}))
    creds, both = guard.scanner(True, False), guard.scanner(True, True)
    pol = guard.policies.default
    clean, dirty = prompt(), prompt(with_findings=True)
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": clean[:1024]}, {"role": "user", "content": dirty[:3072]}]})

    def whole_body() -> None:
        obj = orjson.loads(body)
        if guard.inspect(pol, "chat", obj).redacted:
            orjson.dumps(obj)

    def stream() -> None:
        check = OutputCheck(creds, "redact")
        for i in range(0, len(clean), 16):  # 16-character deltas, as models stream them
            check.feed([TextDelta(0, clean[i:i + 16])])
        check.close()

    rows = [
        ("credentials, 4 KB, nothing found", lambda: creds.scan(clean)),
        ("credentials + PII, 4 KB, nothing found", lambda: both.scan(clean)),
        ("credentials + PII, 4 KB, key + e-mail found", lambda: both.scan(dirty)),
        ("chat body 4 KB: parse, scan, redact, serialise", whole_body),
        ("output check, 4 KB answer in 16-char deltas", stream),
    ]
    print(f"{'what':52s} {'best µs':>9s} {'median µs':>10s}")
    for name, fn in rows:
        best, med = measure(fn, batches=10 if name.startswith("output") else 40)
        print(f"{name:52s} {best:9.1f} {med:10.1f}")
    # hostile 1 MB prompts: linear, but large bodies are scanned off the event loop (pipeline.guard)
    import base64
    import os

    big = [("1 MB base64 noise", base64.b64encode(os.urandom(750_000)).decode()),
           ("1 MB prose", prompt(1_000_000)),
           ("1 MB one line of 30,000 `token=...` pairs", "api_token=Zx9a1B2c3D4e5F6g7H8 " * 30_000)]
    print(f"{'1 MB prompts (credentials + PII)':52s} {'ms CPU':>9s}")
    for name, text in big:
        t0 = time.process_time_ns()
        both.scan(text)
        print(f"{name:52s} {(time.process_time_ns() - t0) / 1e6:9.1f}")


if __name__ == "__main__":
    main()

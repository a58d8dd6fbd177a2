"""OpenAI audio transcriptions (`POST /v1/audio/transcriptions`, multipart), as a metered
pass-through endpoint: token usage in the JSON answer, or in the `transcript.text.done` event of
its stream (`stream=true`). Shapes from `CreateTranscriptionResponseJson`, `TranscriptTextDeltaEvent`,
`TranscriptTextDoneEvent` and `TranscriptTextUsageTokens` of `../shared/specs/openai-openapi.yml`."""

from __future__ import annotations

import json

from .scenario import OUTPUT_TOKENS, REPLY_TEXT, split_words
from .sse import Sse

AUDIO_INPUT_TOKENS = 14


def usage() -> dict:
    return {"type": "tokens", "input_tokens": AUDIO_INPUT_TOKENS,
            "input_token_details": {"text_tokens": 0, "audio_tokens": AUDIO_INPUT_TOKENS},
            "output_tokens": OUTPUT_TOKENS, "total_tokens": AUDIO_INPUT_TOKENS + OUTPUT_TOKENS}


def transcription() -> dict:
    return {"text": REPLY_TEXT, "usage": usage()}


def transcription_stream() -> list[Sse]:
    events = [Sse(json.dumps({"type": "transcript.text.delta", "delta": w}, separators=(",", ":")))
              for w in split_words(REPLY_TEXT)]
    done = {"type": "transcript.text.done", "text": REPLY_TEXT, "usage": usage()}
    return [*events, Sse(json.dumps(done, separators=(",", ":")))]

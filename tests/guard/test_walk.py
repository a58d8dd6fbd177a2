"""Every client format's text is found (and only text: no images, files or thinking)."""

from __future__ import annotations

from tollway.guard.walk import text_slots


def texts(kind: str, body: dict) -> list[str]:
    return [c[k] for c, k in text_slots(kind, body)]


def test_openai_chat_messages_parts_tool_calls_and_results() -> None:
    body = {"model": "m", "messages": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "u1"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                                     {"type": "file", "file": {"file_data": "AAAA"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"q\": \"a1\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "t1"}]}
    assert texts("chat", body) == ["sys", "u1", "{\"q\": \"a1\"}", "t1"]


def test_responses_instructions_and_input_items() -> None:
    body = {"model": "m", "instructions": "ins", "input": [
        {"role": "user", "content": "plain"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "it"},
                                                         {"type": "input_image", "image_url": "https://x/y.png"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}x"},
        {"type": "function_call_output", "call_id": "c", "output": "out"},
        {"type": "reasoning", "encrypted_content": "zzz", "summary": []}]}
    assert texts("responses", body) == ["ins", "plain", "it", "{}x", "out"]
    assert texts("responses", {"input": "just text"}) == ["just text"]


def test_anthropic_system_blocks_tool_use_and_results_not_thinking_or_images() -> None:
    body = {"model": "m", "system": [{"type": "text", "text": "sys"}], "messages": [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "secret thoughts", "signature": "sig"},
            {"type": "tool_use", "id": "t", "name": "f", "input": {"query": "q1", "n": 2, "deep": {"k": "q2"}}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "r1"}]},
            {"type": "tool_result", "tool_use_id": "t", "content": "r2"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            {"type": "text", "text": "last"}]}]}
    assert texts("messages", body) == ["sys", "hello", "q1", "q2", "r1", "r2", "last"]


def test_gemini_contents_and_system_instruction() -> None:
    body = {"systemInstruction": {"parts": [{"text": "sys"}]}, "contents": [
        {"role": "user", "parts": [{"text": "u"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]},
        {"role": "model", "parts": [{"text": "thought", "thought": True},
                                    {"functionCall": {"name": "f", "args": {"q": "a"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"result": "r"}}}]}]}
    assert texts("gemini", body) == ["sys", "u", "a", "r"]


def test_gemini_embed_and_count_tokens() -> None:
    assert texts("embed_content", {"content": {"parts": [{"text": "one"}]}}) == ["one"]
    assert texts("embed_content", {"requests": [{"content": {"parts": [{"text": "a"}]}},
                                                {"content": {"parts": [{"text": "b"}]}}]}) == ["a", "b"]
    assert texts("gemini_count_tokens", {"generateContentRequest": {"contents": [{"parts": [{"text": "c"}]}]}}) == ["c"]
    assert texts("generate_content", {"contents": [{"parts": [{"text": "d"}]}]}) == ["d"]


def test_passthrough_bodies_every_string_but_ids_and_data() -> None:
    body = {"model": "omni-moderation-latest", "input": ["one", {"type": "image_url", "image_url": {"url": "u"}}],
            "metadata": {"note": "two"}}
    assert texts("passthrough", body) == ["one", "two"]


def test_redaction_through_slots_rewrites_the_body() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}]}
    for c, k in text_slots("chat", body):
        c[k] = c[k].upper()
    assert body["messages"][0]["content"][0]["text"] == "A"


def test_text_in_less_common_places_is_found() -> None:
    """Anthropic text documents, legacy function_call arguments, predicted outputs, Responses
    tool outputs of every kind, Gemini code parts: all text the client sends the model."""
    assert texts("messages", {"messages": [{"role": "user", "content": [
        {"type": "document", "title": "t", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "inner"}]}}]}]}) \
        == ["doc", "t", "inner"]
    assert texts("chat", {"prediction": {"type": "content", "content": "pred"}, "messages": [
        {"role": "assistant", "function_call": {"name": "f", "arguments": "{\"a\": 1}"}}]}) == ["pred", "{\"a\": 1}"]
    assert texts("responses", {"input": [{"type": "local_shell_call_output", "call_id": "c", "output": "sh"},
                                         {"type": "mcp_call_output", "output": {"text": "mcp"}}]}) == ["sh", "mcp"]
    assert texts("gemini", {"contents": [{"parts": [{"executableCode": {"language": "PYTHON", "code": "x=1"}},
                                                    {"codeExecutionResult": {"outcome": "OK", "output": "1"}}]}]}) \
        == ["PYTHON", "x=1", "OK", "1"]


def test_nesting_hides_no_string() -> None:
    deep: dict = {"secret": "found me"}
    for i in range(200):
        deep = {"level": i, "more": [deep]} if i % 2 else {"more": deep}
    body = {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                                       "content": "ok"}]},
                         {"role": "assistant", "content": [{"type": "tool_use", "id": "u", "name": "f",
                                                            "input": {"a": "first", "deep": deep, "z": "last"}}]}]}
    assert texts("messages", body) == ["ok", "first", "found me", "last"]

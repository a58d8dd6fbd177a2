"""The demo answers structured-output requests as a real model does: JSON when a client asks for
JSON (with a schema: a value that fits it), a tool call when a client forces one. So a new user's
`generateObject`, `with_structured_output` or `.parse()` works against `tollway serve --demo`,
including through Tollway's JSON-mode emulation for Anthropic-speaking providers (demo-claude)."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
from google.genai import types as gtypes
from pydantic import BaseModel

from tests.harness import Tollway, anthropic_client, gemini_client, openai_client
from tollway.providers.demo_answer import example_of

DEMOS = ["demo", "demo-claude", "demo-gemini"]
ASK = [{"role": "user", "content": "Where is it sunny?"}]
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1},
                                            "unit": {"enum": ["C", "F"]}},
           "required": ["city", "days", "unit"], "additionalProperties": False}


class City(BaseModel):
    city: str
    days: int


@pytest.fixture
def oai(demo: Tollway) -> openai.OpenAI:
    return openai_client(demo, api_key="no-key-needed")


@pytest.mark.parametrize("model", DEMOS)
@pytest.mark.parametrize("stream", [False, True])
def test_json_mode_gets_a_json_object(oai: openai.OpenAI, demo: Tollway, model: str, stream: bool) -> None:
    kw = {"model": model, "messages": ASK, "response_format": {"type": "json_object"}}
    if stream:
        chunks = list(oai.chat.completions.create(**kw, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        out = oai.chat.completions.create(**kw)
        text, finish = out.choices[0].message.content, [out.choices[0].finish_reason]
    assert finish == ["stop"]
    assert "Where is it sunny?" in json.loads(text)["message"]


@pytest.mark.parametrize("model", DEMOS)
def test_a_json_schema_gets_a_value_that_fits_it(oai: openai.OpenAI, model: str) -> None:
    parsed = oai.chat.completions.parse(model=model, messages=ASK, response_format=City).choices[0].message.parsed
    assert isinstance(parsed, City) and parsed.days == 0
    out = oai.responses.parse(model=model, input="Where is it sunny?", text_format=City)
    assert isinstance(out.output_parsed, City)
    strict = oai.responses.create(model=model, input="Weather?", text={"format": {
        "type": "json_schema", "name": "weather", "schema": WEATHER, "strict": True}})
    assert json.loads(strict.output_text) == {"city": "demo", "days": 1, "unit": "C"}


@pytest.mark.parametrize("model", DEMOS)
@pytest.mark.parametrize("stream", [False, True])
def test_a_forced_tool_is_called_with_arguments_that_fit(oai: openai.OpenAI, demo: Tollway, model: str,
                                                          stream: bool) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
             {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    kw = {"model": model, "messages": ASK, "tools": tools,
          "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
    if stream:
        with oai.chat.completions.stream(**kw) as s:
            final = s.get_final_completion()
    else:
        final = oai.chat.completions.create(**kw)
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "demo", "days": 1, "unit": "C"}
    # the whole conversation goes on: the tool's result comes back, the model answers in text
    follow = oai.chat.completions.create(model=model, tools=tools, messages=[
        *ASK, choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])
    assert follow.choices[0].finish_reason == "stop" and follow.choices[0].message.content


@pytest.mark.parametrize("model", DEMOS)
def test_responses_tool_choice_required(oai: openai.OpenAI, model: str) -> None:
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]
    out = oai.responses.create(model=model, input="Weather?", tools=tools, tool_choice="required")
    (call,) = [o for o in out.output if o.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments)["unit"] == "C"
    with oai.responses.stream(model=model, input="Weather?", tools=tools, tool_choice="required") as s:
        final = s.get_final_response()
    assert [o.name for o in final.output if o.type == "function_call"] == ["get_weather"]


@pytest.mark.parametrize("model", DEMOS)
def test_anthropic_sdk_forced_tool(demo: Tollway, model: str) -> None:
    claude: anthropic.Anthropic = anthropic_client(demo, api_key="no-key-needed")
    tools = [{"name": "get_weather", "input_schema": WEATHER}]
    msg = claude.messages.create(model=model, max_tokens=100, messages=ASK, tools=tools,
                                 tool_choice={"type": "tool", "name": "get_weather"})
    assert msg.stop_reason == "tool_use"
    (block,) = msg.content
    assert block.type == "tool_use" and block.name == "get_weather" and block.input["days"] == 1
    with claude.messages.stream(model=model, max_tokens=100, messages=ASK, tools=tools,
                                tool_choice={"type": "any"}) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].input == block.input


@pytest.mark.parametrize("model", DEMOS)
def test_google_genai_schema_and_forced_function(demo: Tollway, model: str) -> None:
    g = gemini_client(demo, api_key="no-key-needed")
    out = g.models.generate_content(model=model, contents="Where is it sunny?", config=gtypes.GenerateContentConfig(
        response_mime_type="application/json", response_schema=City))
    assert isinstance(out.parsed, City)
    fn = gtypes.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER)
    out = g.models.generate_content(model=model, contents="Weather?", config=gtypes.GenerateContentConfig(
        tools=[gtypes.Tool(function_declarations=[fn])],
        automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True),
        tool_config=gtypes.ToolConfig(function_calling_config=gtypes.FunctionCallingConfig(mode="ANY"))))
    (call,) = out.function_calls
    assert call.name == "get_weather" and call.args == {"city": "demo", "days": 1, "unit": "C"}


def test_example_values_fit_their_schemas() -> None:
    assert example_of({"type": "OBJECT", "properties": {"n": {"type": "NUMBER", "minimum": 2.5},
                                                        "tags": {"type": "ARRAY", "items": {"type": "STRING"}}}},
                      "hi") == {"n": 2.5, "tags": ["demo"]}
    assert example_of({"anyOf": [{"type": "null"}, {"type": "integer", "exclusiveMinimum": 3}]}, "hi") == 4
    assert example_of({"type": ["null", "boolean"]}, "hi") is True
    assert example_of({"type": "object", "additionalProperties": False}, "hi") == {}
    assert example_of({"type": "object"}, "hi") == {"message": "hi"}
    recursive = {"type": "object", "properties": {"child": {}}}
    node: dict = recursive
    for _ in range(20):  # deeper than any answer goes: cut off with null, never a recursion error
        node["properties"]["child"] = {"type": "object", "properties": {"child": {}}}
        node = node["properties"]["child"]
    value = example_of(recursive, "hi")
    depth = 0
    while isinstance(value, dict):
        value, depth = value["child"], depth + 1
    assert value is None and depth <= 9

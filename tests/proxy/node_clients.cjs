// The Vercel AI SDK against a running Tollway, for tests/proxy/test_node_clients.py.
// Packages are resolved from TOLLWAY_NODE_CLIENTS (a directory whose node_modules holds `ai`,
// `@ai-sdk/openai`, `@ai-sdk/anthropic` and `zod`). Prints one JSON object: check -> result or {error}.
const { createRequire } = require("node:module");
const path = require("node:path");
const need = createRequire(path.join(process.env.TOLLWAY_NODE_CLIENTS, "package.json"));
const { generateText, streamText, generateObject, tool, stepCountIs } = need("ai");
const { createOpenAI } = need("@ai-sdk/openai");
const { createAnthropic } = need("@ai-sdk/anthropic");
const { z } = need("zod");

const [url, key] = process.argv.slice(2);
globalThis.AI_SDK_LOG_WARNINGS = false;
const openai = createOpenAI({ baseURL: url + "/v1", apiKey: key });
const anthropic = createAnthropic({ baseURL: url + "/v1", apiKey: key });
const weather = tool({ description: "weather", inputSchema: z.object({ city: z.string() }),
                       execute: async ({ city }) => `sunny in ${city}` });
const TOOL_ASK = "Weather in Paris? [[tool:weather]]";

const checks = {
  // @ai-sdk/anthropic validates every non-streamed answer (citations must be absent or an array)
  "anthropic provider, translated, generateText": async () => (await generateText({ model: anthropic("gpt-4o-mini"), prompt: "hi" })).text,
  "anthropic provider, translated, tool steps": async () => {
    const r = await generateText({ model: anthropic("gpt-4o-mini"), prompt: TOOL_ASK, tools: { weather }, stopWhen: stepCountIs(3) });
    return [r.steps.length, r.text];
  },
  // @ai-sdk/openai's Responses model sends an earlier answer back as an item_reference
  "openai responses, anthropic model, item_reference": async () => {
    const first = await generateText({ model: openai("claude-haiku-4-5"), prompt: "hi [[echo]]" });
    const again = await generateText({ model: openai("claude-haiku-4-5"), messages: [
      { role: "user", content: "hi [[echo]]" }, ...first.response.messages, { role: "user", content: "again [[echo]]" }] });
    return { first: first.text, upstream: again.text };  // [[echo]]: the fake answers with the body it got
  },
  "openai responses, anthropic model, tool steps": async () => {
    const r = await generateText({ model: openai("claude-haiku-4-5"), prompt: TOOL_ASK, tools: { weather }, stopWhen: stepCountIs(3) });
    return [r.steps.length, r.text];
  },
  "openai responses, anthropic model, streamed tool steps": async () => {
    const s = streamText({ model: openai("claude-haiku-4-5"), prompt: TOOL_ASK, tools: { weather }, stopWhen: stepCountIs(3) });
    return [(await s.steps).length, await s.text];
  },
  // json_object through Tollway's emulation (a forced tool) to an Anthropic-speaking provider
  "openai chat json_object, demo-claude": async () =>
    (await generateObject({ model: openai.chat("demo-claude"), output: "no-schema", prompt: "Where is it sunny?" })).object,
  "openai responses json_schema, demo-claude": async () =>
    (await generateObject({ model: openai("demo-claude"), schema: z.object({ city: z.string() }), prompt: "Where?" })).object,
};

(async () => {
  const out = {};
  for (const [name, fn] of Object.entries(checks)) {
    try { out[name] = await fn(); }
    catch (e) { out[name] = { error: String(e && e.message || e) + (e && e.responseBody ? " body=" + String(e.responseBody).slice(0, 300) : "") }; }
  }
  process.stdout.write(JSON.stringify(out));
})();

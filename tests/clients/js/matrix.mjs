// One everyday path of an npm client against pollama: `node matrix.mjs <case> <base url>`.
// Prints what the test checks as one JSON line; any failure exits non-zero with the error.
import { Ollama } from "ollama";
import OpenAI from "openai";

const [, , name, url] = process.argv;
const ollama = new Ollama({ host: url });
const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused" });
const ADD = {
  type: "function",
  function: {
    name: "add",
    description: "Add two integers.",
    parameters: {
      type: "object",
      properties: { a: { type: "integer" }, b: { type: "integer" } },
      required: ["a", "b"],
    },
  },
};
const QUESTION = [{ role: "user", content: "What is 1234 plus 5678? Use the tool." }];
const HI = [{ role: "user", content: "Hi" }];

const cases = {
  async "ollama chat stream"() {
    const parts = [];
    for await (const part of await ollama.chat({ model: "smol", messages: HI, stream: true, options: { num_predict: 8 } })) {
      parts.push(part);
    }
    return { chunks: parts.length, done: parts.at(-1).done, text: parts.map((p) => p.message.content).join("") };
  },
  async "ollama tools"() {
    const reply = await ollama.chat({ model: "qwen", messages: QUESTION, tools: [ADD], options: { temperature: 0, num_predict: 64 } });
    return { calls: reply.message.tool_calls.map((call) => ({ name: call.function.name, arguments: call.function.arguments })) };
  },
  async "ollama format"() {
    const schema = { type: "object", properties: { name: { type: "string" }, age: { type: "integer" } }, required: ["name", "age"] };
    const reply = await ollama.chat({
      model: "smol", messages: [{ role: "user", content: "Describe a person as JSON." }], format: schema,
      options: { temperature: 1, seed: 2, num_predict: 100 },
    });
    return { keys: Object.keys(JSON.parse(reply.message.content)) };
  },
  async "ollama embed"() {
    const reply = await ollama.embed({ model: "minilm", input: ["a cat", "a dog"] });
    return { count: reply.embeddings.length, size: reply.embeddings[0].length };
  },
  async "ollama list"() {
    return { names: (await ollama.list()).models.map((model) => model.name) };
  },
  async "openai chat"() {
    const reply = await openai.chat.completions.create({ model: "smol", messages: HI, max_tokens: 8 });
    return { text: reply.choices[0].message.content };
  },
  async "openai stream"() {
    const chunks = [];
    for await (const chunk of await openai.chat.completions.create({ model: "smol", messages: HI, max_tokens: 8, stream: true })) {
      chunks.push(chunk);
    }
    return { chunks: chunks.length, finish: chunks.at(-1).choices[0].finish_reason };
  },
  async "openai tools"() {
    const reply = await openai.chat.completions.create({ model: "qwen", messages: QUESTION, tools: [ADD], temperature: 0, max_tokens: 64 });
    return { calls: reply.choices[0].message.tool_calls.map((call) => ({ name: call.function.name, arguments: JSON.parse(call.function.arguments) })) };
  },
  async "openai embeddings"() {
    const reply = await openai.embeddings.create({ model: "minilm", input: ["a cat", "a dog"] });
    return { count: reply.data.length, size: reply.data[0].embedding.length };
  },
  async "openai models"() {
    const ids = [];
    for await (const model of openai.models.list()) ids.push(model.id);
    return { ids };
  },
};

console.log(JSON.stringify(await cases[name]()));

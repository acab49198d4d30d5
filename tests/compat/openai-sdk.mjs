// Compatibility check of moad with the unmodified official OpenAI Node SDK
// (the `openai` npm package pinned in package.json).
//
//   node openai-sdk.mjs BASE_URL [MODEL]      e.g. http://127.0.0.1:8080/v1 moa
//
// Runs the SDK's ordinary calls against a running moad and exits 0 when every
// check holds, 1 with a "FAIL: ..." line naming the first mismatch otherwise.
// Run by tests/integration/test_compat.py against a daemon on the builtin
// (deterministic, offline) provider.
import diagnostics_channel from "node:diagnostics_channel";
import OpenAI, { toFile } from "openai";
import { VERSION as sdkVersion } from "openai/version";

const [baseURL, model = "moa"] = process.argv.slice(2);
if (!baseURL) {
  console.error("usage: node openai-sdk.mjs BASE_URL [MODEL]");
  process.exit(2);
}
console.log(`openai-node ${sdkVersion}, node ${process.version}, ${baseURL}, model ${model}`);

// Count new TCP connections the SDK opens (a built-in channel of Node's net
// module; the client itself is not touched).
let connections = 0;
diagnostics_channel.subscribe("net.client.socket", () => { connections++; });

// No retries: a failure must show, not be papered over by a second attempt.
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 120 * 1000 });

class Mismatch extends Error {}
function check(cond, what) {
  if (!cond) throw new Mismatch(what);
}
const show = (v) => JSON.stringify(v)?.slice(0, 400);
// An error's headers: a fetch Headers object in SDK 5, a plain object in 4.
const header = (h, name) => (typeof h?.get === "function" ? h.get(name) : h?.[name]);
const question = "Can my landlord keep the deposit after I move out?";
const messages = [{ role: "user", content: question }];

async function expectError(cls, status, promise, what) {
  try {
    const r = await promise;
    throw new Mismatch(`${what}: expected ${cls.name} (${status}), got a reply ${show(r)}`);
  } catch (e) {
    if (e instanceof Mismatch) throw e;
    check(e instanceof cls, `${what}: expected ${cls.name}, got ${e?.constructor?.name}: ${e?.message}`);
    check(e.status === status, `${what}: expected status ${status}, got ${e.status}`);
    return e;
  }
}

const checks = [
  ["models.list() includes moa and legal; models.retrieve()", async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    for (const want of ["moa", "legal"])
      check(ids.includes(want), `models.list(): no "${want}" in ${show(ids)}`);
    const legal = await client.models.retrieve("legal");
    check(legal.id === "legal" && legal.object === "model", `models.retrieve("legal"): ${show(legal)}`);
    await expectError(OpenAI.NotFoundError, 404, client.models.retrieve("nope"), 'models.retrieve("nope")');
    return ids.join(", ");
  }],

  ["non-streaming chat completion", async () => {
    const r = await client.chat.completions.create({ model, messages });
    check(typeof r.id === "string" && r.id.startsWith("chatcmpl-"), `id ${show(r.id)} does not start with chatcmpl-`);
    check(r.object === "chat.completion", `object is ${show(r.object)}`);
    const content = r.choices?.[0]?.message?.content;
    check(typeof content === "string" && content.length > 0, `choices[0].message.content is empty: ${show(r.choices)}`);
    check(r.choices[0].message.role === "assistant", `role is ${show(r.choices[0].message.role)}`);
    check(r.usage?.total_tokens > 0, `usage.total_tokens not > 0: ${show(r.usage)}`);
    state.answer = content;
    return `${content.length} chars, ${r.usage.total_tokens} tokens, id ${r.id}`;
  }],

  ["streaming equals non-streaming, usage in the last chunk", async () => {
    const stream = await client.chat.completions.create({
      model, messages, stream: true, stream_options: { include_usage: true },
    });
    let text = "", n = 0, last = null, finish = null;
    for await (const chunk of stream) {
      check(chunk.object === "chat.completion.chunk", `chunk object is ${show(chunk.object)}`);
      check(chunk.id?.startsWith("chatcmpl-"), `chunk id ${show(chunk.id)} does not start with chatcmpl-`);
      text += chunk.choices[0]?.delta?.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      last = chunk;
      n++;
    }
    check(n >= 2, `only ${n} chunks`);
    check(finish === "stop", `finish_reason is ${show(finish)}`);
    check(text === state.answer, `streamed text differs from the non-streamed answer:\n  streamed: ${show(text)}\n  plain:    ${show(state.answer)}`);
    check(last.usage?.total_tokens > 0, `last chunk has no usage: ${show(last)}`);
    check(Array.isArray(last.choices) && last.choices.length === 0, `usage chunk has choices ${show(last.choices)}`);
    return `${n} chunks, ${text.length} chars, ${last.usage.total_tokens} tokens`;
  }],

  ["withResponse() gives the x-request-id header", async () => {
    const { data, response } = await client.chat.completions.create({ model, messages }).withResponse();
    const rid = response.headers.get("x-request-id");
    check(typeof rid === "string" && rid.length > 0, `no x-request-id header in ${show([...response.headers.keys()])}`);
    check(data.choices[0].message.content === state.answer, "withResponse() data differs from the plain answer");
    const raw = await client.models.list().asResponse();
    check(raw.status === 200, `models asResponse() status ${raw.status}`);
    check(raw.headers.get("x-request-id"), "no x-request-id on GET /v1/models");
    return `x-request-id ${rid}`;
  }],

  ["unknown model is OpenAI.NotFoundError naming it", async () => {
    const e = await expectError(OpenAI.NotFoundError, 404,
      client.chat.completions.create({ model: "nope", messages }), "model nope");
    check(e.message.includes("nope"), `message does not name the model: ${show(e.message)}`);
    check(e.error?.message?.includes("nope"), `error.message does not name the model: ${show(e.error)}`);
    check(header(e.headers, "x-request-id"), "404 has no x-request-id header");
    return e.message;
  }],

  ["empty messages is OpenAI.BadRequestError", async () => {
    const e = await expectError(OpenAI.BadRequestError, 400,
      client.chat.completions.create({ model, messages: [] }), "messages []");
    check(e.type === "invalid_request_error", `type is ${show(e.type)}`);
    return e.message;
  }],

  ["extra body field moa.trace passes through", async () => {
    // Plain JS: the SDK sends unknown body params as they are (TypeScript
    // users write the same with a cast or `// @ts-expect-error`).
    const r = await client.chat.completions.create({ model, messages, moa: { trace: true } });
    const layers = r.moa?.layers;
    check(Array.isArray(layers) && layers.length > 0, `reply has no moa.layers: ${show(r.moa)}`);
    check(layers.every((l) => Array.isArray(l) && l.length > 0 && l.every((c) => c.agent && c.status)),
      `moa.layers malformed: ${show(layers)}`);
    check(r.choices[0].message.content === state.answer, "the trace changed the answer");
    return `${layers.length} layers: ${layers.map((l) => l.map((c) => c.agent).join("+")).join(" -> ")}`;
  }],

  ["Batch API: files.create, batches.create/retrieve/list, files.content", async () => {
    const ids = ["first", "second"];
    const jsonl = ids.map((id) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions",
      body: { model, messages } })).join("\n") + "\n";
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl), "questions.jsonl"), purpose: "batch" });
    check(file.object === "file" && file.id.startsWith("file-"), `files.create(): ${show(file)}`);
    check(file.purpose === "batch" && file.bytes === Buffer.byteLength(jsonl) && file.filename === "questions.jsonl",
      `files.create() fields: ${show(file)}`);
    const again = await client.files.retrieve(file.id);
    check(again.id === file.id && again.bytes === file.bytes, `files.retrieve(): ${show(again)}`);
    let batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions",
      completion_window: "24h", metadata: { suite: "compat" } });
    check(batch.object === "batch" && batch.id.startsWith("batch_"), `batches.create(): ${show(batch)}`);
    check(batch.request_counts?.total === 2 && batch.metadata?.suite === "compat", `batches.create(): ${show(batch)}`);
    for (let i = 0; i < 600 && !["completed", "failed", "cancelled", "expired"].includes(batch.status); i++) {
      await new Promise((r) => setTimeout(r, 100));
      batch = await client.batches.retrieve(batch.id);
    }
    check(batch.status === "completed", `batches.retrieve(): ${show(batch)}`);
    check(batch.request_counts.completed === 2 && batch.request_counts.failed === 0, `counts: ${show(batch.request_counts)}`);
    const text = await (await client.files.content(batch.output_file_id)).text();
    const out = text.trim().split("\n").map((l) => JSON.parse(l));
    check(out.map((o) => o.custom_id).join() === ids.join(), `output custom_ids: ${show(out.map((o) => o.custom_id))}`);
    for (const o of out) {
      check(o.response?.status_code === 200 && o.error === null, `output line: ${show(o)}`);
      check(o.response.body.choices[0].message.content === state.answer,
        `batch answer differs from the chat answer: ${show(o.response.body.choices[0].message.content)}`);
    }
    const listed = [];
    for await (const b of client.batches.list({ limit: 10 })) listed.push(b.id);
    check(listed.includes(batch.id), `batches.list(): ${show(listed)}`);
    await expectError(OpenAI.NotFoundError, 404, client.batches.retrieve("batch_nope"), 'batches.retrieve("batch_nope")');
    return `${batch.id}: ${out.length} lines, output ${batch.output_file_id}`;
  }],

  ["Batch API: batches.cancel, files.delete", async () => {
    // Many lines, answered one at a time (the test's daemon runs jobs with
    // concurrency 1), so that the cancel arrives long before the last is
    // answered even on a loaded machine.
    const n = 2000;
    const jsonl = Array.from({ length: n }, (_, i) => JSON.stringify({ custom_id: `q${i}`, method: "POST",
      url: "/v1/chat/completions", body: { model, messages: [{ role: "user", content: `${question} (${i})` }] } })).join("\n");
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl), "many.jsonl"), purpose: "batch" });
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    const cancelled = await client.batches.cancel(batch.id);
    check(cancelled.id === batch.id && cancelled.status === "cancelled", `batches.cancel(): ${show(cancelled)}`);
    check(cancelled.request_counts.completed < n, `cancel came after every line: ${show(cancelled.request_counts)}`);
    await expectError(OpenAI.ConflictError, 409, client.batches.cancel(batch.id), "batches.cancel() again");
    const del = await client.files.delete(file.id);
    check(del.id === file.id && del.deleted === true, `files.delete(): ${show(del)}`);
    await expectError(OpenAI.NotFoundError, 404, client.files.retrieve(file.id), "files.retrieve() after files.delete()");
    return `cancelled after ${cancelled.request_counts.completed} of ${n} lines`;
  }],

  ["20 sequential requests on kept-alive connections", async () => {
    const before = connections;
    for (let i = 0; i < 20; i++) {
      const r = await client.chat.completions.create({ model, messages: [{ role: "user", content: `${question} (${i})` }] });
      check(r.choices?.[0]?.message?.content, `request ${i + 1} of 20: empty answer`);
    }
    const opened = connections - before;
    if (connections === 0) return "connections not observable on this Node (net.client.socket never fired)";
    check(opened < 20, `the SDK opened ${opened} connections for 20 requests: moad does not keep them alive`);
    return `${opened} new connection(s) for 20 requests (${connections} in the whole run)`;
  }],
];

const state = {};
let failed = 0;
for (const [name, fn] of checks) {
  try {
    const detail = await fn();
    console.log(`ok   ${name}: ${detail}`);
  } catch (e) {
    failed++;
    const why = e instanceof Mismatch ? e.message : `${e?.constructor?.name}: ${e?.message}`;
    console.log(`FAIL ${name}: ${why}`);
    if (!(e instanceof Mismatch) && e?.stack) console.log(e.stack);
    if (e instanceof OpenAI.APIConnectionError) break; // nothing else can work
    if (state.answer === undefined && name.startsWith("non-streaming")) break; // later checks compare with it
  }
}
console.log(failed ? `${failed} of ${checks.length} checks failed` : `all ${checks.length} checks passed`);
process.exit(failed ? 1 : 0);

// The official OpenAI SDK, unchanged, against calos's /v1 with a calos JWT as
// the API key: streamed chunks arrive at the upstream's pace, and a whole
// completion and the model list have OpenAI's shapes.
import { expect, test } from "@playwright/test";
import OpenAI from "openai";

const base = () => process.env.CALOS_BASE_URL!;

async function client(): Promise<OpenAI> {
  const username = `e2e-sdk-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
  const response = await fetch(`${base()}/api/auth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password: "sdk-password-1" }),
  });
  expect(response.status).toBe(201);
  const { token } = (await response.json()) as { token: string };
  return new OpenAI({ baseURL: `${base()}/v1`, apiKey: token, maxRetries: 0 });
}

test("the OpenAI SDK streams through calos at the upstream's pace", async () => {
  const openai = await client();
  const sent = performance.now();
  const stream = await openai.chat.completions.create({
    model: "mock-llama",
    messages: [{ role: "user", content: "Hello, how are you?" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const arrivals: number[] = [];
  let text = "";
  let usage: OpenAI.CompletionUsage | undefined | null;
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta?.content;
    if (delta) {
      arrivals.push(performance.now() - sent);
      text += delta;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  expect(text).toBe("Mock t1 t2 t3 t4 t5 t6 t7 t8 t9 t10 t11");
  expect(usage?.completion_tokens).toBe(12);
  // The mock waits 400 ms, then sends 6 tokens/s: the first chunk is not early,
  // and the chunks are spread out (streamed, not buffered to the end).
  expect(arrivals[0]).toBeGreaterThanOrEqual(400);
  expect(arrivals[arrivals.length - 1] - arrivals[0]).toBeGreaterThanOrEqual(1500);
});

test("the OpenAI SDK gets whole completions and the model list", async () => {
  const openai = await client();
  const completion = await openai.chat.completions.create({
    model: "sim",
    messages: [{ role: "user", content: "Say hi" }],
    max_tokens: 6,
  });
  expect(completion.object).toBe("chat.completion");
  expect(completion.choices[0].message.content).toContain("[simulated");
  const models = await openai.models.list();
  const ids = models.data.map((m) => m.id);
  expect(ids).toContain("mock-llama");
  expect(ids).toContain("sim");
});

test("the OpenAI SDK sees calos's errors as API errors", async () => {
  const openai = await client();
  await expect(
    openai.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] }),
  ).rejects.toMatchObject({ status: 404 });
});

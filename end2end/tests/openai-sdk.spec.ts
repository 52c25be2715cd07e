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

test("a key made on /keys works as the OpenAI SDK's api_key, only for its models, until it is revoked", async ({ page }) => {
  const username = `e2e-keys-${Date.now()}`;
  const registered = await page.request.post("/api/auth/register", { data: { username, password: "keys-password-1" } });
  expect(registered.status()).toBe(201);
  await page.goto("/keys");
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  await page.getByTestId("key-name").fill("sdk test");
  await page.getByTestId("key-models").fill("mock-llama");
  await page.getByTestId("key-create").click();
  const secret = await page.getByTestId("new-key").inputValue();
  expect(secret).toMatch(/^calos_sk_[A-Za-z0-9]{40}$/);
  const row = page.getByTestId("key-list").locator("tr", { hasText: "sdk test" });
  await expect(row).toContainText(secret.slice(0, 12));
  await expect(row).not.toContainText(secret);

  const openai = new OpenAI({ baseURL: `${base()}/v1`, apiKey: secret, maxRetries: 0 });
  const completion = await openai.chat.completions.create({
    model: "mock-llama",
    messages: [{ role: "user", content: "Hello from a key" }],
  });
  expect(completion.choices[0].message.content).toBeTruthy();
  const models = await openai.models.list();
  expect(models.data.map((m) => m.id)).toEqual(["mock-llama"]);
  await expect(
    openai.chat.completions.create({ model: "mock-gpt", messages: [{ role: "user", content: "not mine" }] }),
  ).rejects.toMatchObject({ status: 403 });

  await row.getByRole("button", { name: "Revoke" }).click();
  await expect(page.getByTestId("key-list").locator("tr", { hasText: "sdk test" })).toHaveCount(0);
  await expect(
    openai.chat.completions.create({ model: "mock-llama", messages: [{ role: "user", content: "revoked" }] }),
  ).rejects.toMatchObject({ status: 401 });
});

test("a key's requests show on /usage, and its rate limit reaches the SDK as OpenAI's 429", async ({ page }) => {
  const username = `e2e-usage-${Date.now()}`;
  const registered = await page.request.post("/api/auth/register", { data: { username, password: "usage-password-1" } });
  expect(registered.status()).toBe(201);
  await page.goto("/keys");
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  await page.getByTestId("key-name").fill("metered");
  await page.getByTestId("key-rpm").fill("2");
  await page.getByTestId("key-create").click();
  const secret = await page.getByTestId("new-key").inputValue();
  await expect(page.getByTestId("key-list").locator("tr", { hasText: "metered" })).toContainText("2 requests/min");

  const openai = new OpenAI({ baseURL: `${base()}/v1`, apiKey: secret, maxRetries: 0 });
  for (const content of ["one", "two"]) {
    const completion = await openai.chat.completions.create({ model: "mock-llama", messages: [{ role: "user", content }] });
    expect(completion.usage?.total_tokens).toBeGreaterThan(0);
  }
  await expect(
    openai.chat.completions.create({ model: "mock-llama", messages: [{ role: "user", content: "three" }] }),
  ).rejects.toMatchObject({ status: 429, code: "rate_limit_exceeded", type: "rate_limit_exceeded" });

  // The ledger writes in batches: the page shows the requests a moment later.
  await expect(async () => {
    await page.goto("/usage");
    await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
    const row = page.getByTestId("usage-by-key").locator("tr", { hasText: "metered" });
    await expect(row.locator("td").nth(1)).toHaveText("3", { timeout: 1000 });
    await expect(row.locator("td").nth(2)).toHaveText("1");
  }).toPass({ timeout: 15_000 });
  await expect(page.getByTestId("usage-chart").locator(".bar")).toHaveCount(1);
  await expect(page.getByTestId("usage-budget")).toHaveText("no token budget");
});

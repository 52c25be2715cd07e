import { expect, test, type Page } from "@playwright/test";

// Set by global-setup.ts once calos is listening (workers start after it).
test.use({ baseURL: process.env.CALOS_BASE_URL });

async function signIn(page: Page) {
  const username = `e2e-chat-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
  const created = await page.request.post("/api/auth/register", { data: { username, password: "chat-password-1" } });
  expect(created.status()).toBe(201);
  // The register call set the session cookie in this browser context.
  await page.goto("/");
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
}

test("a slow model's reply streams in before it is complete, then shows its breakdown", async ({ page }) => {
  await signIn(page);
  const model = page.getByLabel("Model");
  await expect(model.locator("option[value='mock-llama']")).toHaveCount(1);
  await model.selectOption("mock-llama");
  await page.getByRole("textbox", { name: "Message" }).fill("Hello, how are you?");
  await page.getByRole("button", { name: "Send" }).click();

  const reply = page.locator("article[data-role='assistant']");
  // The first tokens are on the page while the reply is still streaming...
  await expect(reply).toContainText("Mock");
  await expect(reply).toHaveAttribute("data-streaming", "true");
  await expect(reply.getByTestId("breakdown")).toHaveCount(0);
  // ...then the whole reply and its breakdown.
  await expect(reply).toContainText("t11", { timeout: 15_000 });
  await expect(reply).toHaveAttribute("data-streaming", "false");
  const breakdown = reply.getByTestId("breakdown");
  for (const label of ["auth", "db", "queue", "TTFT", "generation", "network"]) {
    await expect(breakdown).toContainText(label);
  }
  await expect(page.locator("article[data-role='user']")).toContainText("Hello, how are you?");
});

test("the simulated model is offered and labelled as simulated", async ({ page }) => {
  await signIn(page);
  await expect(page.getByLabel("Model").locator("option[value='sim']")).toHaveText("sim (simulated)");
});

test("stop cancels a reply mid-stream", async ({ page }) => {
  await signIn(page);
  await page.getByLabel("Model").selectOption("mock-llama");
  await page.getByRole("textbox", { name: "Message" }).fill("Tell me a long story");
  await page.getByRole("button", { name: "Send" }).click();
  const reply = page.locator("article[data-role='assistant']");
  await expect(reply).toContainText("Mock");
  await page.getByRole("button", { name: "Stop" }).click();
  await expect(reply).toContainText("Stopped.");
  await expect(reply).not.toContainText("t11");
  await expect(page.getByRole("button", { name: "Send" })).toBeEnabled();
});

test("a pinned reply is the baseline the next reply's timings are compared against, across a reload", async ({ page }) => {
  await signIn(page);
  await page.evaluate(() => localStorage.removeItem("calos.timingBaseline"));
  await page.getByLabel("Model").selectOption("mock-llama");
  const replies = page.locator("article[data-role='assistant']");
  const send = async (text: string, count: number) => {
    await page.getByRole("textbox", { name: "Message" }).fill(text);
    await page.getByRole("button", { name: "Send" }).click();
    await expect(replies).toHaveCount(count);
    await expect(replies.nth(count - 1).getByTestId("breakdown")).toBeVisible({ timeout: 15_000 });
    await expect(page.getByRole("button", { name: "Send" })).toBeEnabled();
  };

  await send("First question", 1);
  const first = replies.nth(0);
  // Nothing is pinned yet: no differences anywhere.
  await expect(page.getByTestId("baseline-delta")).toHaveCount(0);
  await first.getByRole("button", { name: "Pin as baseline" }).click();
  await expect(first.getByText("Baseline", { exact: true })).toBeVisible();
  await expect(first.getByRole("button", { name: "Unpin" })).toBeVisible();
  const stored = await page.evaluate(() => JSON.parse(localStorage.getItem("calos.timingBaseline") ?? "null"));
  expect(stored.label).toContain("mock-llama");
  expect(Object.keys(stored.components)).toEqual(
    expect.arrayContaining(["network", "auth", "database", "queue", "cache", "connect", "firstToken", "generation", "code", "total"]),
  );

  await send("Second question", 2);
  const second = replies.nth(1);
  const expectDifferences = async () => {
    const delta = second.getByTestId("baseline-delta");
    await expect(delta).toBeVisible();
    // One signed difference per component, the total last.
    const rows = delta.locator("li.delta");
    await expect(rows).toHaveCount(10);
    for (const label of ["network", "auth", "database", "queue", "cache", "upstream connect",
      "model's first token", "generation", "calos's own code", "total"]) {
      await expect(delta).toContainText(label);
    }
    for (const text of await rows.locator("strong").allTextContents()) {
      expect(text).toMatch(/^([+-]\d+\.\d|0\.0) ms$/);
    }
    await expect(delta).toContainText("an indication, not a verdict");
    await expect(delta).toContainText("calos perf --runs N --baseline FILE");
    // The mock's timings are real, so the verdict goes either way; the page
    // highlights the part that grew the most exactly when it says one did.
    const summary = (await delta.locator(".baseline-summary").textContent()) ?? "";
    if (summary.includes("grew the most")) {
      await expect(delta.locator("li.delta-named")).toHaveCount(1);
      const named = (await delta.locator("li.delta-named").textContent()) ?? "";
      expect(summary).toContain(named.replace(/\s*[+-]?\d+\.\d ms$/, "").trim());
    } else {
      await expect(delta.locator("li.delta-named")).toHaveCount(0);
      expect(summary).toMatch(/within 5 % \/ 2 ms|faster than the baseline|no single part/);
    }
    // The pinned reply shows no differences of its own.
    await expect(first.getByTestId("baseline-delta")).toHaveCount(0);
  };
  await expectDifferences();

  await page.reload();
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  await expect(first.getByText("Baseline", { exact: true })).toBeVisible();
  await expectDifferences();

  // Unpinning clears it, here and in storage.
  await first.getByRole("button", { name: "Unpin" }).click();
  await expect(page.getByTestId("baseline-delta")).toHaveCount(0);
  expect(await page.evaluate(() => localStorage.getItem("calos.timingBaseline"))).toBeNull();
});

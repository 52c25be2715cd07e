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

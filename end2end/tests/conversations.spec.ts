import { readFileSync } from "node:fs";
import { expect, test, type Page } from "@playwright/test";

// Set by global-setup.ts once calos is listening (workers start after it).
test.use({ baseURL: process.env.CALOS_BASE_URL });

async function signIn(page: Page) {
  const username = `e2e-conv-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
  const created = await page.request.post("/api/auth/register", { data: { username, password: "conv-password-1" } });
  expect(created.status()).toBe(201);
  await page.goto("/");
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  await expect(page.getByLabel("Model").locator("option[value='mock-llama']")).toHaveCount(1);
  await page.getByLabel("Model").selectOption("mock-llama");
}

/** Types a message and presses Enter; waits for the whole reply. */
async function say(page: Page, text: string) {
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill(text);
  await box.press("Enter");
  const last = page.locator("article[data-role='assistant']").last();
  await expect(last).toContainText("t11", { timeout: 15_000 });
  await expect(last).toHaveAttribute("data-streaming", "false");
}

const sidebar = (page: Page) => page.getByRole("navigation", { name: "Conversations" });

test("Enter sends, Shift+Enter breaks the line, and a reload keeps the conversation", async ({ page }) => {
  await signIn(page);
  await say(page, "Plan a trip to Lisbon");
  await expect(page).toHaveURL(/\/c\/[0-9a-f-]{36}$/);
  await expect(page.getByRole("heading", { name: "Plan a trip to Lisbon" })).toBeVisible();
  await expect(sidebar(page).getByRole("link", { name: "Plan a trip to Lisbon" })).toBeVisible();

  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill("line one");
  await box.press("Shift+Enter");
  await box.pressSequentially("line two");
  await expect(box).toHaveValue("line one\nline two");
  await expect(page.locator("article[data-role='user']")).toHaveCount(1);
  await box.press("Enter");
  await expect(page.locator("article[data-role='assistant']").nth(1)).toContainText("t11", { timeout: 15_000 });

  await page.reload();
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  const users = page.locator("article[data-role='user']");
  await expect(users).toHaveCount(2);
  await expect(users.nth(0)).toContainText("Plan a trip to Lisbon");
  await expect(users.nth(1)).toContainText("line two");
  const replies = page.locator("article[data-role='assistant']");
  await expect(replies).toHaveCount(2);
  // Each stored reply keeps its model and timing breakdown.
  await expect(replies.nth(0)).toContainText("mock-llama");
  await expect(replies.nth(0).getByTestId("breakdown")).toContainText("TTFT");
  await expect(page.getByRole("button", { name: "Regenerate" })).toBeEnabled();
});

test("conversations are listed, searched, switched, renamed, exported and deleted", async ({ page }) => {
  await signIn(page);
  await say(page, "Plan a trip to Lisbon");
  const first = page.url();
  await sidebar(page).getByRole("link", { name: "New chat" }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  await page.getByLabel("Model").selectOption("mock-llama");
  await say(page, "A recipe for bread");
  await expect(page).not.toHaveURL(first);

  const links = sidebar(page).locator("a[data-conversation]");
  await expect(links).toHaveCount(2);
  // Newest first.
  await expect(links.nth(0)).toHaveText("A recipe for bread");
  await sidebar(page).getByRole("searchbox", { name: "Search conversations" }).fill("LISBON");
  await expect(links).toHaveCount(1);
  await links.first().click();
  await expect(page).toHaveURL(first);
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  await expect(page.locator("article[data-role='user']")).toContainText("Plan a trip to Lisbon");

  page.once("dialog", (dialog) => dialog.accept("Lisbon weekend"));
  await page.getByRole("button", { name: "Rename" }).click();
  await expect(page.getByRole("heading", { name: "Lisbon weekend" })).toBeVisible();
  await expect(sidebar(page).getByRole("link", { name: "Lisbon weekend" })).toBeVisible();

  const download = page.waitForEvent("download");
  await page.getByRole("link", { name: "Export Markdown" }).click();
  const file = await download;
  expect(file.suggestedFilename()).toMatch(/^lisbon-weekend.*\.md$/);
  const markdown = readFileSync(await file.path(), "utf8");
  expect(markdown).toContain("# Lisbon weekend");
  expect(markdown).toContain("Plan a trip to Lisbon");

  page.once("dialog", (dialog) => dialog.accept());
  await page.getByRole("button", { name: "Delete" }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  await expect(sidebar(page).locator("a[data-conversation]")).toHaveCount(1);
  await expect(sidebar(page)).not.toContainText("Lisbon weekend");
  expect((await page.request.get(first)).status()).toBe(404);
});

test("a message the server refuses leaves the page showing what is stored", async ({ page }) => {
  await signIn(page);
  await say(page, "Plan a trip to Lisbon");
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill("x".repeat(40_000));
  await box.press("Enter");
  await expect(page.getByRole("alert").filter({ hasText: "characters" })).toBeVisible();
  // The refused message was never stored, so it is not shown, and the last
  // reply (the one Regenerate would answer again) is the stored one.
  await expect(page.locator("article[data-role='user']")).toHaveCount(1);
  await expect(page.locator("article[data-role='assistant']")).toHaveCount(1);
  await expect(page.locator("article[data-role='assistant']")).toContainText("t11");
});

test("a reply copies to the clipboard", async ({ page, context }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await signIn(page);
  await say(page, "Hello");
  await page.locator("article[data-role='assistant']").getByRole("button", { name: "Copy" }).click();
  await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toContain("t11");
});

test.describe("on a phone's width", () => {
  test.use({ viewport: { width: 390, height: 844 } });

  test("the list folds behind a button and the page does not scroll sideways", async ({ page }) => {
    await signIn(page);
    await say(page, "Plan a trip to Lisbon");
    await expect(sidebar(page)).toBeHidden();
    await page.getByRole("button", { name: "Show conversations" }).click();
    await expect(sidebar(page).getByRole("link", { name: "Plan a trip to Lisbon" })).toBeVisible();
    await expect(page.getByRole("textbox", { name: "Message" })).toBeVisible();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
  });
});

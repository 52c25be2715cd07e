import { expect, test } from "@playwright/test";

// Mission Control on the dashboard port; global-setup.ts made the admin.
const dashboard = () => process.env.CALOS_DASHBOARD_URL!;

test("an admin watches health live and sees a chat request in the log feed and latency chart within 2 s", async ({ page, browser }) => {
  // Signed out: sent to sign in.
  await page.goto(`${dashboard()}/dashboard.html`);
  await expect(page).toHaveURL(/\/login$/);
  const login = await page.request.post(`${dashboard()}/api/auth/login`, {
    data: { username: "e2e-admin", password: "e2e-admin-password" },
  });
  expect(login.status()).toBe(200);
  await page.goto(`${dashboard()}/dashboard.html`);
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  await expect(page.getByTestId("feed-status")).toHaveText("live");
  for (const name of ["server", "database", "sim"]) {
    await expect(page.locator(`[data-testid='health-tile'][data-name='${name}']`)).toContainText("up");
  }
  // Each tile's per-minute strip has this minute in it.
  await expect(page.locator("[data-testid='health-tile'][data-name='server'] .bar.up").first()).toBeAttached();

  // Someone chats in another tab (another browser context, another user).
  const other = await browser.newContext({ baseURL: process.env.CALOS_BASE_URL });
  const username = `e2e-watched-${Date.now()}`;
  const registered = await other.request.post("/api/auth/register", { data: { username, password: "watched-password-1" } });
  expect(registered.status()).toBe(201);
  const chat = await other.request.post("/api/llm/complete", {
    data: { model: "mock-llama", messages: [{ role: "user", content: "watch me" }], stream: false },
  });
  expect(chat.status()).toBe(200);
  const requestId = chat.headers()["x-request-id"];
  const answered = Date.now();

  // Its [Performance] line reaches the log feed, the request id in its own column...
  await expect(page.getByTestId("log-lines")).toContainText(requestId, { timeout: 2_000 });
  await expect(page.getByTestId("log-request-id").filter({ hasText: requestId }).first()).toBeVisible();
  // ...and its latency the figures and the chart (whose SVG says how many
  // seconds it plots).
  await expect(page.getByTestId("total-p50")).toHaveText(/ms$/, { timeout: 2_000 - (Date.now() - answered) });
  // The deployment that answered has a tile: its breaker closed, its median
  // time to first token known (the mock waits 400 ms).
  const deployment = page.locator("[data-testid='deployment-tile'][data-name='ollama']");
  await expect(deployment).toHaveAttribute("data-state", "closed");
  await expect(deployment).toContainText(/p50 TTFT [1-9]\d+ ms/, { timeout: 3_000 });
  const chart = await page.request.get(`${dashboard()}/api/monitor/chart.svg?kind=latency`);
  expect(await chart.text()).toMatch(/<desc>[1-9]\d* seconds with data<\/desc>/);

  // Filtering and pausing work on the page.
  await page.getByLabel("Filter log text").fill(requestId);
  const lines = page.getByTestId("log-line");
  await expect(lines.first()).toContainText(requestId);
  for (const text of await lines.allTextContents()) expect(text).toContain(requestId);
  await page.getByTestId("pause-logs").click();
  await expect(page.getByTestId("pause-logs")).toHaveText("Resume");

  // Its tokens reach the tokens/min figure, and its user the day's top users
  // (ranked every 5 s from the usage ledger). The panel shows the top five by
  // tokens and other specs' users chat too, so this user chats more than any
  // of them (the mock answers every chat with the same 17 tokens).
  const more = await Promise.all(
    Array.from({ length: 5 }, () =>
      other.request.post("/api/llm/complete", {
        data: { model: "mock-llama", messages: [{ role: "user", content: "watch me" }], stream: false },
        headers: { "Cache-Control": "no-cache" },
      }),
    ),
  );
  for (const response of more) expect(response.status()).toBe(200);
  await expect(page.getByTestId("tokens-per-minute")).not.toHaveText(/^(0|–)$/);
  await expect(page.getByTestId("top-users")).toContainText(username, { timeout: 10_000 });
  await other.close();
});

test("a signed-in user who is not an administrator gets 403", async ({ page }) => {
  const username = `e2e-nosy-${Date.now()}`;
  const registered = await page.request.post(`${dashboard()}/api/auth/register`, { data: { username, password: "nosy-password-1" } });
  expect(registered.status()).toBe(201);
  const response = await page.goto(`${dashboard()}/dashboard`);
  expect(response?.status()).toBe(403);
  await expect(page.locator("h1")).toHaveText("Mission Control is for administrators");
});

test("an admin records a CPU flamegraph of the running server from the page", async ({ page }) => {
  const login = await page.request.post(`${dashboard()}/api/auth/login`, {
    data: { username: "e2e-admin", password: "e2e-admin-password" },
  });
  expect(login.status()).toBe(200);
  await page.goto(`${dashboard()}/dashboard`);
  await page.getByTestId("profile-seconds").fill("2");
  // Keep calos busy while it samples, so the flamegraph has something in it.
  const busy = (async () => {
    const until = Date.now() + 2_500;
    while (Date.now() < until) {
      await page.request.get(`${dashboard()}/api/monitor/chart.svg?kind=latency`);
    }
  })();
  await page.getByTestId("profile-start").click();
  await busy;
  const frame = page.frameLocator("iframe[name='profile-frame']");
  // inferno's flamegraph: each frame's title says "function (N samples, P%)";
  // an idle window would say "No CPU samples" instead.
  await expect(frame.locator("svg").first()).toContainText(/\d+ samples?, \d/, { timeout: 15_000 });
});

test("an admin makes an invite link on Mission Control, and the link opens a sign-up form that works", async ({ page, browser }) => {
  const login = await page.request.post(`${dashboard()}/api/auth/login`, {
    data: { username: "e2e-admin", password: "e2e-admin-password" },
  });
  expect(login.status()).toBe(200);
  await page.goto(`${dashboard()}/dashboard`);
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  await expect(page.getByTestId("registration-policy")).toContainText("CALOS_REGISTRATION=open");
  const note = `e2e newcomer ${Date.now()}`;
  await page.getByTestId("invite-note").fill(note);
  await page.getByTestId("invite-create").click();
  const link = await page.getByTestId("invite-link").inputValue();
  expect(link).toMatch(/\/login\?form=register&invite=[A-Za-z0-9_-]{43}$/);
  const row = page.getByTestId("invite-list").locator("tr", { hasText: note });
  await expect(row).toHaveAttribute("data-state", "open");

  // The newcomer, in a browser of their own, follows the link.
  const guest = await browser.newContext();
  const newcomer = await guest.newPage();
  await newcomer.goto(link);
  await expect(newcomer.locator("main[data-hydrated='true']")).toBeVisible();
  await expect(newcomer.getByTestId("invited")).toBeVisible();
  const form = newcomer.locator("form[action='/register']");
  await form.locator("input[name='username']").fill(`e2e-invited-${Date.now()}`);
  await form.locator("input[name='password']").fill("invited-password-1");
  await form.getByRole("button", { name: "Create account" }).click();
  await expect(newcomer).toHaveURL(/\/$/);
  await guest.close();

  // Withdrawing an open invite takes it out of the open ones.
  await row.getByRole("button", { name: "Withdraw" }).click();
  await expect(page.getByTestId("invite-list").locator("tr", { hasText: note })).toHaveCount(0);
});

test("an admin sees what changed: the verdict over the last 15 minutes, component by component", async ({ page, browser }) => {
  const login = await page.request.post(`${dashboard()}/api/auth/login`, {
    data: { username: "e2e-admin", password: "e2e-admin-password" },
  });
  expect(login.status()).toBe(200);
  // A fresh answer (not a cache hit: those are not the model path), so the
  // window has at least one request in it.
  const other = await browser.newContext({ baseURL: process.env.CALOS_BASE_URL });
  const username = `e2e-judged-${Date.now()}`;
  const registered = await other.request.post("/api/auth/register", { data: { username, password: "judged-password-1" } });
  expect(registered.status()).toBe(201);
  const chat = await other.request.post("/api/llm/complete", {
    data: { model: "mock-llama", messages: [{ role: "user", content: `judge me ${Date.now()}` }], stream: false },
    headers: { "Cache-Control": "no-cache" },
  });
  expect(chat.status()).toBe(200);
  await other.close();

  await page.goto(`${dashboard()}/dashboard`);
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  const section = page.getByTestId("what-changed");
  await expect(section.getByRole("heading", { name: "What changed" })).toBeVisible();
  // The decision tree's line, and how many requests each window holds.
  await expect(section.getByTestId("verdict-line")).not.toBeEmpty();
  await expect(section.getByTestId("verdict-counts")).toContainText(/Last 15 min: [1-9]\d* requests/);
  // One row per component, the total last, each with a median in ms.
  const rows = section.locator("[data-testid='verdict-table'] tbody tr");
  await expect(rows).toHaveCount(10);
  await expect(section.locator("tr[data-component='database'] td").nth(2)).toHaveText(/ms$/);
  await expect(rows.last()).toHaveAttribute("data-component", "total");
  // Either the hour before has requests and the comparison says what
  // changed, or the page says there is nothing to compare with yet.
  await expect(section.getByTestId("change-summary").or(section.getByTestId("no-baseline"))).toBeVisible();
  // At most one component is named, and only with a comparison.
  expect(await section.locator("tr.verdict-named").count()).toBeLessThanOrEqual(1);
});

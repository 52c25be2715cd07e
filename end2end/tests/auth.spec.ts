import { expect, test, type Page } from "@playwright/test";

// Set by global-setup.ts once calos is listening (workers start after it).
test.use({ baseURL: process.env.CALOS_BASE_URL });

// Waits until the WASM bundle has hydrated the page (an Effect sets the flag),
// so clicks exercise the hydrated handlers rather than racing them.
async function hydrated(page: Page) {
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
}

function uniqueName(prefix: string) {
  return `${prefix}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
}

test("register, sign out, sign in through the page, and stay signed in after a reload", async ({ page }) => {
  const username = uniqueName("e2e-user");
  const password = "correct-horse-battery";

  await page.goto("/");
  await expect(page).toHaveURL(/\/login$/);
  await hydrated(page);

  const register = page.locator("form[action='/register']");
  await register.getByLabel("Username").fill(username);
  await register.getByLabel("Email (optional)").fill(`${username}@example.com`);
  await register.getByLabel("Password").fill(password);
  await register.getByRole("button", { name: "Create account" }).click();

  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByTestId("signed-in-as")).toContainText(username);

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/login$/);
  await hydrated(page);

  const login = page.locator("form[action='/login']");
  await login.getByLabel("Email or username").fill(`${username}@example.com`);
  await login.getByLabel("Password").fill(password);
  await login.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("signed-in-as")).toContainText(username);

  await page.reload();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByTestId("signed-in-as")).toContainText(username);
});

test("a wrong password shows an error and stays on the sign-in page", async ({ page, request }) => {
  const username = uniqueName("e2e-wrong");
  const created = await request.post("/api/auth/register", {
    data: { username, password: "the-right-password" },
  });
  expect(created.status()).toBe(201);

  await page.goto("/login");
  await hydrated(page);
  const login = page.locator("form[action='/login']");
  await login.getByLabel("Email or username").fill(username);
  await login.getByLabel("Password").fill("not-the-password");
  await login.getByRole("button", { name: "Sign in" }).click();

  await expect(page.getByRole("alert")).toContainText("Invalid email/username or password");
  await expect(page).toHaveURL(/\/login/);
});

test("a too-short password is flagged on the field before any request", async ({ page }) => {
  await page.goto("/login");
  await hydrated(page);
  let registerCalls = 0;
  page.on("request", (r) => {
    if (r.url().includes("/api/auth/register")) registerCalls++;
  });
  const register = page.locator("form[action='/register']");
  await register.getByLabel("Username").fill(uniqueName("e2e-short"));
  await register.getByLabel("Password").fill("short");
  await register.getByRole("button", { name: "Create account" }).click();
  await expect(register.getByRole("alert")).toContainText("at least 8 characters");
  expect(registerCalls).toBe(0);
});

test("sign-in works before hydration: with the WASM blocked the plain form still signs in", async ({ page, request }) => {
  const username = uniqueName("e2e-nojs");
  const created = await request.post("/api/auth/register", {
    data: { username, password: "no-wasm-password" },
  });
  expect(created.status()).toBe(201);

  await page.route("**/pkg/*.wasm", (route) => route.abort());
  await page.goto("/login");
  await expect(page.locator("main[data-hydrated='false']")).toBeVisible();
  const login = page.locator("form[action='/login']");
  await login.getByLabel("Email or username").fill(username);
  await login.getByLabel("Password").fill("wrong-password!");
  await login.getByRole("button", { name: "Sign in" }).click();
  // The server-side form path reports the error through the redirect.
  await expect(page).toHaveURL(/error=invalid_credentials/);
  await expect(page.getByRole("alert")).toContainText("Invalid email/username or password");
  // Still not hydrated: this was the no-JS path.
  await expect(page.locator("main[data-hydrated='false']")).toBeVisible();

  await login.getByLabel("Email or username").fill(username);
  await login.getByLabel("Password").fill("no-wasm-password");
  await login.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("signed-in-as")).toContainText(username);
});

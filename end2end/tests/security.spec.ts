import { expect, test, type Page } from "@playwright/test";

// The pages run under a strict Content-Security-Policy (scripts only from
// calos or with the response's nonce), and still hydrate; the API's /docs
// page renders the contract with calos's own copy of Swagger UI.
test.use({ baseURL: process.env.CALOS_BASE_URL });
const dashboard = () => process.env.CALOS_DASHBOARD_URL!;

/** Collects every CSP violation the page reports. */
function violations(page: Page): string[] {
  const seen: string[] = [];
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) seen.push(message.text());
  });
  return seen;
}

test("pages carry a nonce-based script policy and still hydrate", async ({ page }) => {
  const reported = violations(page);
  const response = await page.goto("/login");
  const policy = response!.headers()["content-security-policy"];
  expect(policy).toMatch(/script-src 'self' 'nonce-[A-Za-z0-9_-]{16,}'/);
  expect(policy).toContain("object-src 'none'");
  const nonce = policy.match(/'nonce-([^']+)'/)![1];
  // The hydration script carries that same nonce, and nothing else inline runs.
  const html = await response!.text();
  expect(html).toContain(`nonce="${nonce}"`);
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  // A second render gets a different nonce.
  const again = await page.request.get("/login");
  expect(again.headers()["content-security-policy"]).not.toContain(nonce);
  expect(reported).toEqual([]);
});

test("Mission Control hydrates under the policy", async ({ page }) => {
  const reported = violations(page);
  const login = await page.request.post(`${dashboard()}/api/auth/login`, {
    data: { username: "e2e-admin", password: "e2e-admin-password" },
  });
  expect(login.status()).toBe(200);
  const response = await page.goto(`${dashboard()}/dashboard`);
  expect(response!.headers()["content-security-policy"]).toContain("'nonce-");
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  expect(reported).toEqual([]);
});

test("/docs renders the API contract from calos's own files", async ({ page }) => {
  const reported = violations(page);
  const outside: string[] = [];
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.hostname !== "127.0.0.1" && url.hostname !== "localhost") outside.push(request.url());
  });
  await page.goto("/docs");
  await expect(page.locator(".swagger-ui .info .title")).toContainText("calos");
  await expect(page.getByText("/api/llm/complete").first()).toBeVisible();
  expect(outside).toEqual([]);
  expect(reported).toEqual([]);
});

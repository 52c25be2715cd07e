// Signing in through an OAuth provider, in the browser, against `calos
// mock-oauth` playing Google: the login page's button, the provider's consent
// page, and back to the chat page signed in.
import { expect, test } from "@playwright/test";

test("a configured provider signs a person in through the browser", async ({ page }) => {
  // calos's default public URL (the OAuth redirect URI) is http://localhost:PORT;
  // start there so the flow cookie and the callback share a host.
  const base = process.env.CALOS_BASE_URL!.replace("127.0.0.1", "localhost");
  await page.goto(`${base}/login`);
  const button = page.getByRole("link", { name: "Sign in with Google" });
  await expect(button).toBeVisible();
  await button.click();

  await expect(page.getByRole("heading", { name: /Sign in to google/ })).toBeVisible();
  const unique = `${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
  await page.getByTestId("sub").fill(`e2e-sub-${unique}`);
  await page.getByTestId("email").fill(`e2e-${unique}@example.com`);
  await page.getByTestId("name").fill(`oauth-${unique}`);
  await page.getByTestId("approve").click();

  await expect(page).toHaveURL(`${base}/`);
  await expect(page.getByTestId("signed-in-as")).toContainText(`oauth-${unique}`);
});

test("a cancelled sign-in comes back to the login page with the reason", async ({ page }) => {
  const base = process.env.CALOS_BASE_URL!.replace("127.0.0.1", "localhost");
  await page.goto(`${base}/login`);
  await page.getByRole("link", { name: "Sign in with Google" }).click();
  await page.getByTestId("deny").click();
  await expect(page).toHaveURL(/\/login\?error=oauth_denied/);
  await expect(page.getByRole("alert")).toContainText("cancelled at the provider");
});

// Soulfra in the browser: the login page signs in with an Ed25519 key that
// WebCrypto makes and IndexedDB keeps (private half non-extractable); the same
// browser signs in to the same account again.
import { expect, test } from "@playwright/test";

test("a browser's own Ed25519 key signs in, and signs in to the same account again", async ({ page }) => {
  await page.goto("/login");
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  const button = page.getByTestId("key-login");
  await expect(button).toBeVisible();
  await button.click();

  await expect(page).toHaveURL(/\/$/);
  const who = page.getByTestId("signed-in-as");
  await expect(who).toContainText(/key-[0-9a-f]{12}/);
  const name = (await who.textContent())!;

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/login/);
  await expect(page.locator("main[data-hydrated='true']")).toBeVisible();
  await page.getByTestId("key-login").click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByTestId("signed-in-as")).toHaveText(name);
});

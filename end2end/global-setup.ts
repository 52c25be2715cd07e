// Starts the real calos binary on free ports (port 0) with its own SQLite data
// directory, waits for the line that names its address, and stops it (and removes
// the directory) when the run ends. Tests reach it through CALOS_BASE_URL.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export default async function globalSetup() {
  const root = resolve(__dirname, "..");
  const binary = process.env.CALOS_BIN ?? join(root, "target", "debug", "calos");
  const dataDir = mkdtempSync(join(tmpdir(), "calos-e2e-"));
  const child = spawn(
    binary,
    ["serve", "--local", "--port", "0", "--dashboard-port", "0"],
    {
      cwd: root,
      env: { ...process.env, CALOS_DATA_DIR: dataDir, DATABASE_URL: "", LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const baseURL = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("calos did not start within 30 s")), 30_000);
    let seen = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      const match = seen.match(/listening on (http:\/\/[^\s]+)/);
      if (match) {
        clearTimeout(timer);
        ok(match[1]);
      }
    });
    child.on("exit", (code) => fail(new Error(`calos exited early with code ${code}`)));
  });
  process.env.CALOS_BASE_URL = baseURL;
  return async () => {
    child.kill("SIGTERM");
    await new Promise((done) => child.once("exit", done));
    rmSync(dataDir, { recursive: true, force: true });
  };
}

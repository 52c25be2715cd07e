// Starts `calos mock-llm` (a slow model, so streaming is visible) and the real
// calos binary pointed at it as its Ollama, both on free ports (port 0), calos
// with its own SQLite data directory; waits for the lines that name their
// addresses, and stops both (and removes the directory) when the run ends.
// A `calos mock-oauth` plays Google. Tests reach calos through CALOS_BASE_URL.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export default async function globalSetup() {
  const root = resolve(__dirname, "..");
  const binary = process.env.CALOS_BIN ?? join(root, "target", "debug", "calos");
  const dataDir = mkdtempSync(join(tmpdir(), "calos-e2e-"));
  const mock = spawn(
    binary,
    ["mock-llm", "--port", "0", "--ttft-ms", "400", "--tokens-per-sec", "6", "--tokens", "12"],
    { cwd: root, stdio: ["ignore", "pipe", "inherit"] },
  );
  const [mockURL] = await listening(mock, "mock-llm");
  // A local OAuth / OpenID provider: calos's "Sign in with Google" goes there.
  const idp = spawn(binary, ["mock-oauth", "--port", "0"], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  const [idpURL] = await listening(idp, "mock-oauth");
  const child = spawn(
    binary,
    ["serve", "--local", "--port", "0", "--dashboard-port", "0"],
    {
      cwd: root,
      env: {
        ...process.env,
        CALOS_DATA_DIR: dataDir,
        DATABASE_URL: "",
        LOG_LEVEL: "warn",
        OLLAMA_URL: mockURL,
        // mock-oauth's default client registration.
        GOOGLE_CLIENT_ID: "calos-local",
        GOOGLE_CLIENT_SECRET: "calos-local-secret",
        CALOS_GOOGLE_ISSUER: `${idpURL}/google`,
      },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const [baseURL, dashboardURL] = await listening(child, "calos");
  process.env.CALOS_BASE_URL = baseURL;
  process.env.CALOS_DASHBOARD_URL = dashboardURL;
  // An administrator for Mission Control, made the way an operator would.
  const admin = spawnSync(
    binary,
    ["users", "create", "--username", "e2e-admin", "--admin", "--password-stdin"],
    { cwd: root, env: { ...process.env, CALOS_DATA_DIR: dataDir, DATABASE_URL: "" }, input: "e2e-admin-password\n" },
  );
  if (admin.status !== 0) throw new Error(`creating the admin failed: ${admin.stderr}`);
  return async () => {
    for (const proc of [child, mock, idp]) {
      proc.kill("SIGTERM");
      await new Promise((done) => proc.once("exit", done));
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
}

/** Resolves with the URL a process prints in its `listening on URL` line, and
 * calos's dashboard URL from the same line when there is one. */
function listening(child: ChildProcess, name: string): Promise<[string, string]> {
  return new Promise<[string, string]>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start within 30 s`)), 30_000);
    let seen = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      const match = seen.match(/listening on (http:\/\/[^\s]+)/);
      if (match) {
        clearTimeout(timer);
        const dashboard = seen.match(/dashboard (http:\/\/[^\s)]+)/);
        ok([match[1], dashboard ? dashboard[1] : ""]);
      }
    });
    child.on("exit", (code) => fail(new Error(`${name} exited early with code ${code}`)));
  });
}

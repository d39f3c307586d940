// @ts-check
/**
 * What the browser tests stand on: the local stack of `make console`
 * (`target/debug/examples/console`: the emulator, validate-destination under
 * `cargo lambda watch`, the API Gateway stand-in hosting the built page),
 * Debian's Chromium driven by playwright-core, axe-core, and the customer
 * admin's side of the flow, done against the emulator the way the admin
 * would in AWS.
 */

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, "../..");
export const shots = path.join(repo, "target/console/screenshots");
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * @typedef {{ url: string, emulator: string, org_id: string,
 *   customer: { account: string, region: string, bucket: string, role_arn: string } }} Ready
 */

/** Starts the stack and waits for its `READY {json}` line (the first build can take minutes). */
export async function startStack() {
  const binary = path.join(repo, "target/debug/examples/console");
  const child = spawn(binary, [], { cwd: repo, stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: /** @type {import("node:stream").Readable} */ (child.stdout) });
  /** @type {Ready} */
  const ready = await new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the console stack exited (${code}) before it was ready`)));
    lines.on("line", (line) => {
      if (line.startsWith("READY ")) resolve(JSON.parse(line.slice("READY ".length)));
    });
  });
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.stdin?.end(); // the stack stops when its input closes
    await exited;
  };
  return { ready, stop };
}

/** Debian's Chromium, headless, with the flags this closed network needs. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
}

/**
 * @typedef {{ console: string[], urls: string[], errors: string[], requests: string[] }} Seen
 * what every page logged, asked for (`METHOD url`), navigated to and threw
 */

/**
 * A page on the console with what a test watches: every console message,
 * every request and every page error, for the no-secret checks. The page
 * runs under the host's Content-Security-Policy (checked here): a script or
 * style it blocked would show in the console log, which a test reads.
 * @param {import("playwright-core").Browser} browser
 * @param {Ready} ready
 * @param {{ width: number, height: number }} viewport
 * @param {Seen} seen
 */
export async function openConsole(browser, ready, viewport, seen) {
  const context = await browser.newContext({ viewport });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(ready.url).origin });
  const page = await context.newPage();
  page.on("console", (message) => seen.console.push(message.text()));
  page.on("pageerror", (error) => seen.errors.push(String(error)));
  page.on("request", (request) => {
    seen.urls.push(request.url());
    seen.requests.push(`${request.method()} ${new URL(request.url()).pathname}`);
  });
  page.on("framenavigated", (frame) => seen.urls.push(frame.url()));
  const response = await page.goto(ready.url);
  const policy = response?.headers()["content-security-policy"] ?? "";
  if (!policy.includes("script-src 'self'") || !policy.includes("frame-ancestors 'none'"))
    throw new Error(`the page is served without its Content-Security-Policy: ${policy}`);
  await page.locator("#principal-arn").filter({ hasText: "arn:" }).waitFor();
  return { context, page };
}

/**
 * axe-core on the page as it is now; answers the serious and critical
 * violations (the bar) and keeps every finding in `target/`.
 * @param {import("playwright-core").Page} page
 */
export async function axe(page) {
  // Evaluated through the DevTools protocol, which the page's CSP does not
  // govern (a <script> tag would be refused, rightly).
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(axeSource);
  /** @type {{ violations: { id: string, impact: string, help: string, nodes: { target: string[] }[] }[] }} */
  const results = await page.evaluate(() =>
    // @ts-ignore: axe is the injected global
    window.axe.run(document, { resultTypes: ["violations"] }),
  );
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

/** @param {import("playwright-core").Page} page @param {string} name */
export async function screenshot(page, name) {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/**
 * Runs boto3 calls in `account` through the emulator's set-up endpoint:
 * the customer's admin acting in their own account (making a bucket, a
 * role), which the product never does.
 * @param {Ready} ready @param {string} account @param {string} region @param {object[]} calls
 */
export async function asCustomerAdmin(ready, account, region, calls) {
  const response = await fetch(`${ready.emulator}/_sm/aws`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ account, region, calls }),
  });
  if (!response.ok) throw new Error(`the customer's admin could not act: ${await response.text()}`);
  return (await response.json()).results;
}

/** @param {Ready} ready @param {string} account @param {string} region @param {string} bucket */
export function createBucket(ready, account, region, bucket) {
  const args = { Bucket: bucket, ...(region === "us-east-1" ? {} : { CreateBucketConfiguration: { LocationConstraint: region } }) };
  return asCustomerAdmin(ready, account, region, [{ service: "s3", op: "create_bucket", args }]);
}

/**
 * The words of a POSIX shell command line, as sh would split them: blanks
 * separate, single quotes keep everything, `\` escapes one character and a
 * backslash-newline joins lines. Enough to run the page's `aws` commands.
 * @param {string} line
 */
export function shellWords(line) {
  /** @type {string[]} */
  const words = [];
  let word = null;
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end === -1) throw new Error("unterminated quote");
      word = (word ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (c === "\\") {
      i += 1;
      if (line[i] !== "\n") word = (word ?? "") + line[i];
    } else if (c === " " || c === "\t" || c === "\n") {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

/**
 * What the AWS CLI would do with the page's two `aws iam` commands, done
 * in `account` (the only two commands the page gives; anything else fails
 * the test).
 * @param {Ready} ready @param {string} account @param {string} region @param {string} script
 */
export async function runCliCommands(ready, account, region, script) {
  const commands = script.replaceAll("\\\n", " ").split("\n").filter((l) => l.trim());
  const calls = commands.map((command) => {
    const words = shellWords(command);
    /** @param {string} name */
    const option = (name) => {
      const at = words.indexOf(name);
      if (at === -1) throw new Error(`${words.slice(0, 3).join(" ")} has no ${name}`);
      return words[at + 1];
    };
    const verb = words.slice(0, 3).join(" ");
    if (verb === "aws iam create-role")
      return { service: "iam", op: "create_role", args: {
        RoleName: option("--role-name"), AssumeRolePolicyDocument: option("--assume-role-policy-document"),
        MaxSessionDuration: Number(option("--max-session-duration")) } };
    if (verb === "aws iam put-role-policy")
      return { service: "iam", op: "put_role_policy", args: {
        RoleName: option("--role-name"), PolicyName: option("--policy-name"), PolicyDocument: option("--policy-document") } };
    throw new Error(`the page gave a command the test does not know: ${verb}`);
  });
  return asCustomerAdmin(ready, account, region, calls);
}

/**
 * The org's API as the host page reaches it (same bearer token), for a
 * test's own set-up and its checks of what the page did.
 * @param {Ready} ready
 */
export async function orgApi(ready) {
  const session = await (await fetch(new URL("/local/session", ready.url))).json();
  /** @param {string} method @param {string} route @param {unknown} [body] */
  const call = async (method, route, body) => {
    const response = await fetch(new URL(route, ready.url), {
      method,
      headers: { Authorization: `Bearer ${session.token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  return { token: /** @type {string} */ (session.token), templateUrl: /** @type {string} */ (session.customer_template_url), call };
}

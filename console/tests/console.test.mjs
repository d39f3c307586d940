// @ts-check
/**
 * The console in a real browser (Debian's Chromium, headless) against the
 * local stack of `make console`: the whole happy path from setup to a
 * saved, tested destination; a wrong External ID in the customer's trust
 * policy; pause, resume, edit and delete at a phone's width; an axe-core
 * scan of each screen; and that no secret leaves the page. Screenshots go
 * to target/console/screenshots/, figures to target/console/figures.json.
 */

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import {
  axe, createBucket, launchBrowser, openConsole, orgApi, repo, runCliCommands, screenshot, shots, startStack,
  asCustomerAdmin,
} from "./stack.mjs";

/** Contract section 5's checks, in its order. */
const CONTRACT_ORDER = ["request", "role_arn", "role_name_prefix", "bucket_name", "region", "folder_path", "encryption",
  "bucket_private_confirmed", "auth", "access_key", "assume_role", "external_id_enforced", "put_object", "not_public"];

const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;
/** @type {import("playwright-core").Browser} */
let browser;
/** @type {Awaited<ReturnType<typeof orgApi>>} */
let api;
let externalId = "";
/** Everything every page logged, requested or threw. */
/** @type {import("./stack.mjs").Seen} */
const seen = { console: [], urls: [], errors: [], requests: [] };
/** @type {Record<string, unknown>} */
const figures = {};
/** @type {Record<string, string[]>} */
const violations = {};

before(async () => {
  stack = await startStack();
  browser = await launchBrowser();
  api = await orgApi(stack.ready);
  externalId = (await api.call("GET", "/v1/setup")).body.external_id;
  assert.ok(externalId.length >= 32, "the org's External ID");
});

after(async () => {
  writeFileSync(path.join(repo, "target/console/figures.json"), JSON.stringify({ figures, violations }, null, 2));
  await browser?.close();
  await stack?.stop();
});

/** Time spent scanning and taking screenshots, left out of the scripted user's time. */
let reviewMs = 0;

/** Scans the page with axe-core under `name` and fails on a serious or critical violation. */
async function scan(/** @type {import("playwright-core").Page} */ page, /** @type {string} */ name) {
  const start = performance.now();
  const found = await axe(page);
  violations[name] = found;
  assert.deepEqual(found, [], `axe-core found serious or critical violations on ${name}`);
  await screenshot(page, name);
  reviewMs += performance.now() - start;
}

/** The page fits its viewport: nothing to scroll sideways at a phone's width. */
async function fitsWidth(/** @type {import("playwright-core").Page} */ page) {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  assert.ok(scroll <= width, `the page is ${scroll}px wide in a ${width}px viewport`);
}

/** The checklist's check names and statuses, in the order the page shows them. */
async function shownChecks(/** @type {import("playwright-core").Locator} */ list) {
  return list.locator("li.check").evaluateAll((items) =>
    items.map((li) => [li.getAttribute("data-check"), li.getAttribute("data-status")]));
}

test("happy path: an admin goes from nothing to a saved, tested destination", async () => {
  const account = "210987654321";
  const region = "eu-west-1";
  await createBucket(stack.ready, account, region, "web-store-archive");
  const { context, page } = await openConsole(browser, stack.ready, DESKTOP, seen);
  let clicks = 0;
  let typed = 0;
  const click = async (/** @type {import("playwright-core").Locator} */ target, force = false) => { clicks += 1; await target.click({ force }); };
  const type = async (/** @type {string} */ label, /** @type {string} */ value) => { typed += 1; await page.getByLabel(label, { exact: true }).fill(value); };
  const started = performance.now();
  reviewMs = 0;

  // Setup: our values, the External ID masked until revealed (nowhere in
  // the document, not only out of sight).
  await page.locator("#trust-policy").filter({ hasText: "sts:ExternalId" }).waitFor();
  const hidden = async () => assert.ok(!(await page.content()).includes(externalId), "the External ID is in the page before Reveal");
  await hidden();
  assert.match(await page.locator("#external-id").innerText(), /^•+$/);
  assert.equal(await page.locator("#role-name-prefix").innerText(), "stored-messages");
  await scan(page, "1-setup-desktop");
  await click(page.getByRole("button", { name: "Reveal" }));
  assert.equal(await page.locator("#external-id").innerText(), externalId);
  await click(page.getByRole("button", { name: "Hide" }));
  await hidden();

  // The admin fills in where the archive goes; the policies follow.
  await type("Bucket", "web-store-archive");
  await type("Folder (optional)", "archive/prod");
  await type("Bucket region", region);
  await page.locator("#permissions-policy").filter({ hasText: "arn:aws:s3:::web-store-archive/archive/prod/*" }).waitFor();
  await click(page.getByRole("button", { name: "Copy trust policy" }));
  const trust = JSON.parse(await page.evaluate(() => navigator.clipboard.readText()));
  assert.equal(trust.Statement[0].Condition.StringEquals["sts:ExternalId"], externalId, "the copied trust policy carries the real External ID");

  // The quick-create link: every parameter but the External ID.
  const link = new URL(/** @type {string} */ (await page.locator("#quick-create").getAttribute("href")));
  assert.equal(link.host, `${region}.console.aws.amazon.com`);
  const quick = new URLSearchParams(link.hash.split("?")[1]);
  assert.equal(quick.get("templateURL"), api.templateUrl);
  assert.equal(quick.get("param_BucketName"), "web-store-archive");
  assert.equal(quick.get("param_FolderPath"), "archive/prod");
  assert.equal(quick.get("param_RoleNamePrefix"), "stored-messages");
  assert.ok(!link.href.includes(externalId), "the External ID never goes into a URL");
  const template = await fetch(api.templateUrl);
  assert.equal(template.status, 200);
  assert.match(await template.text(), /"ExternalId"/);

  // The admin runs the page's AWS CLI commands in the bucket's account.
  await click(page.getByRole("button", { name: "Copy AWS CLI commands" }));
  const commands = await page.evaluate(() => navigator.clipboard.readText());
  assert.ok(commands.includes(externalId), "the copied commands hold the External ID whole");
  await runCliCommands(stack.ready, account, region, commands);
  await scan(page, "2-setup-filled-desktop");

  // Connect: the form starts from Setup; Save waits for a passing test.
  await click(page.getByRole("button", { name: "Next: connect the bucket" }));
  assert.equal(await page.getByLabel("Bucket", { exact: true }).inputValue(), "web-store-archive");
  assert.equal(await page.getByLabel("Folder (optional)").inputValue(), "archive/prod");
  await type("Project ID", "web-store");
  await type("Role ARN", `arn:aws:iam::${account}:role/stored-messages-archive`);
  await click(page.getByLabel(/I confirm the bucket blocks public access/));
  const save = page.getByRole("button", { name: "Save", exact: true });
  assert.equal(await save.getAttribute("aria-disabled"), "true");
  // Playwright will not click what is aria-disabled; a person can, and must
  // get the reason said and nothing sent.
  await hidden();
  await click(save, true);
  await page.locator("#announcer").filter({ hasText: "Save becomes available once Test connection passes" }).waitFor();
  assert.ok(!seen.requests.includes("POST /v1/destinations"), "Save before a passing test sends nothing");
  await click(page.getByRole("button", { name: "Test connection" }));
  const checks = page.locator("#connect-checks");
  await checks.getByRole("heading", { name: /^All checks passed/ }).waitFor();
  const shown = await shownChecks(checks);
  assert.deepEqual(shown.map(([name]) => name), CONTRACT_ORDER, "every check, in the contract's order");
  assert.deepEqual(shown.filter(([, status]) => status === "fail"), []);
  assert.equal(await page.evaluate(() => document.activeElement?.id), "connect-checks-summary", "focus lands on the result");
  assert.equal(await save.getAttribute("aria-disabled"), "false");
  await scan(page, "3-connect-passed-desktop");
  await click(save);

  // Destinations: saved and active; Test runs the live checks again.
  const card = page.locator("li.destination").filter({ hasText: "s3://web-store-archive/archive/prod" });
  await card.locator('[data-status="active"]').waitFor();
  await click(card.getByRole("button", { name: "Test" }));
  await card.getByRole("heading", { name: /^All checks passed/ }).waitFor();
  const seconds = (performance.now() - started - reviewMs) / 1000;
  assert.notEqual(await card.locator(".last-checked").innerText(), "never");
  await scan(page, "4-destinations-desktop");

  const saved = (await api.call("GET", "/v1/destinations")).body.destinations;
  assert.equal(saved.length, 1);
  assert.equal(saved[0].status, "active");
  assert.equal(saved[0].role_arn, `arn:aws:iam::${account}:role/stored-messages-archive`);
  assert.equal(saved[0].folder_path, "archive/prod");
  assert.ok(saved[0].health.last_ok_at, "the test recorded a success");
  figures.happy_path = { clicks, fields_typed: typed, seconds: Number(seconds.toFixed(2)) };
  console.log(`happy path: ${clicks} clicks, ${typed} fields typed, ${seconds.toFixed(2)} s from the first page to a saved, tested destination (axe scans and screenshots left out)`);
  await context.close();
});

test("a wrong External ID in the trust policy shows assume_role_denied and its remediation, keyboard only", async () => {
  const account = "310987654321";
  const region = "eu-west-1";
  const { context, page } = await openConsole(browser, stack.ready, DESKTOP, seen);
  // The admin mistyped the External ID in the role's trust policy.
  const setup = (await api.call("GET", "/v1/setup?bucket=typo-archive")).body;
  const mistyped = `${externalId.slice(0, -1)}${externalId.endsWith("X") ? "Y" : "X"}`;
  const typo = JSON.stringify(setup.trust_policy).replace(externalId, mistyped);
  assert.ok(!typo.includes(externalId));
  await createBucket(stack.ready, account, region, "typo-archive");
  await asCustomerAdmin(stack.ready, account, region, [
    { service: "iam", op: "create_role", args: { RoleName: "stored-messages-typo", AssumeRolePolicyDocument: typo } },
    { service: "iam", op: "put_role_policy", args: { RoleName: "stored-messages-typo", PolicyName: "w", PolicyDocument: JSON.stringify(setup.permissions_policy) } },
  ]);

  // Keyboard only, and in the page's focus order.
  /** Presses Tab until `selector` has focus, and answers what got focus on the way. */
  const tabTo = async (/** @type {string} */ selector) => {
    const passed = [];
    for (let i = 0; i < 60; i += 1) {
      await page.keyboard.press("Tab");
      const at = await page.evaluate((s) => {
        const el = document.activeElement;
        return { id: el?.id || el?.textContent?.trim() || el?.tagName || "", here: Boolean(el?.matches(s)) };
      }, selector);
      passed.push(at.id);
      if (at.here) return passed;
    }
    throw new Error(`${selector} never got focus; focus went ${passed.join(" > ")}`);
  };
  await tabTo('nav button[data-screen="connect"]');
  await page.keyboard.press("Enter");
  const order = [];
  for (const [id, value] of [["connect-project", "typo-project"], ["connect-role-arn", `arn:aws:iam::${account}:role/stored-messages-typo`],
    ["connect-bucket", "typo-archive"], ["connect-folder", ""], ["connect-region", region]]) {
    order.push(...(await tabTo(`#${id}`)));
    if (value) await page.keyboard.type(value);
  }
  order.push(...(await tabTo("#connect-private")));
  await page.keyboard.press("Space");
  order.push(...(await tabTo("#test-connection")));
  const fields = order.filter((id) => id.startsWith("connect-"));
  assert.deepEqual(fields.slice(0, 7), ["connect-project", "connect-role-arn", "connect-bucket", "connect-folder", "connect-region",
    "connect-encryption", "connect-layout"], "focus follows the form's order");
  await page.keyboard.press("Enter");

  const checks = page.locator("#connect-checks");
  await checks.getByRole("heading", { name: /^1 check failed/ }).waitFor();
  const shown = await shownChecks(checks);
  assert.deepEqual(shown.map(([name]) => name), CONTRACT_ORDER);
  const failed = checks.locator('li[data-check="assume_role"]');
  assert.equal(await failed.getAttribute("data-status"), "fail");
  assert.match(await failed.locator(".check-code").innerText(), /assume_role_denied/);
  const remediation = await failed.locator(".remediation").innerText();
  assert.match(remediation, /External ID/);
  assert.match(remediation, /trust policy/);
  for (const later of ["external_id_enforced", "put_object", "not_public"])
    assert.equal(await checks.locator(`li[data-check="${later}"]`).getAttribute("data-status"), "skip");
  assert.equal(await page.getByRole("button", { name: "Save", exact: true }).getAttribute("aria-disabled"), "true");
  await scan(page, "5-connect-failing-desktop");
  assert.equal(await page.locator("#connect-outdated").isHidden(), true);
  await checks.screenshot({ path: path.join(shots, "checklist-failing.png") });
  assert.ok(!(await api.call("GET", "/v1/destinations")).body.destinations.some((/** @type {any} */ d) => d.bucket === "typo-archive"),
    "nothing is saved");
  // A change to the form says the results on screen no longer hold.
  await page.getByLabel("Folder (optional)").fill("typo");
  await page.locator("#connect-outdated").waitFor();
  await context.close();
});

test("at a phone's width: pause, resume, edit and delete a destination", async () => {
  const { customer } = stack.ready;
  const created = await api.call("POST", "/v1/destinations", {
    project_id: "mobile-app", role_arn: customer.role_arn, region: customer.region, bucket: customer.bucket,
    bucket_private_confirmed: true,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.destination.id;
  const { context, page } = await openConsole(browser, stack.ready, PHONE, seen);
  await fitsWidth(page);
  await scan(page, "6-setup-phone");
  await page.getByRole("button", { name: "2. Connect" }).click();
  await fitsWidth(page);
  await scan(page, "7-connect-phone");
  await page.getByRole("button", { name: "Destinations" }).click();
  const card = page.locator(`li.destination[data-id="${id}"]`);
  await card.locator('[data-status="active"]').waitFor();
  await fitsWidth(page);
  await scan(page, "8-destinations-phone");

  await card.getByRole("button", { name: "Pause" }).click();
  await page.locator(`li.destination[data-id="${id}"] [data-status="disabled"]`).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("data-action")), "resume", "focus stays on the toggle");
  assert.equal((await api.call("GET", `/v1/destinations/${id}`)).body.destination.status, "disabled");
  await scan(page, "9-paused-phone");
  await page.locator(`li.destination[data-id="${id}"]`).getByRole("button", { name: "Resume" }).click();
  await page.locator(`li.destination[data-id="${id}"] [data-status="active"]`).waitFor();
  assert.equal((await api.call("GET", `/v1/destinations/${id}`)).body.destination.status, "active");

  // Edit: a change that is not to the connection saves without a test,
  // and sends only what changed; an edit saved elsewhere meanwhile is never
  // overwritten (If-Match): the form reloads what is stored.
  await page.locator(`li.destination[data-id="${id}"]`).getByRole("button", { name: "Edit" }).click();
  const saveChanges = page.getByRole("button", { name: "Save changes" });
  assert.equal(await saveChanges.getAttribute("aria-disabled"), "true", "nothing changed yet");
  await page.getByLabel("Layout").selectOption("by_date");
  assert.equal(await saveChanges.getAttribute("aria-disabled"), "false");
  await scan(page, "10-edit-phone");
  assert.equal((await api.call("PATCH", `/v1/destinations/${id}`, { compression: "none" })).status, 200);
  await saveChanges.click();
  await page.locator("#announcer").filter({ hasText: "changed elsewhere" }).waitFor();
  assert.equal(await page.getByLabel("Compression").inputValue(), "none", "the form shows what is stored now");
  assert.equal((await api.call("GET", `/v1/destinations/${id}`)).body.destination.layout, "by_recipient", "the stale edit saved nothing");
  await page.getByLabel("Layout").selectOption("by_date");
  const patched = page.waitForRequest((r) => r.method() === "PATCH");
  await saveChanges.click();
  assert.deepEqual((await patched).postDataJSON(), { layout: "by_date" }, "only the change is sent");
  await page.locator(`li.destination[data-id="${id}"]`).waitFor();
  const edited = (await api.call("GET", `/v1/destinations/${id}`)).body.destination;
  assert.deepEqual([edited.layout, edited.compression], ["by_date", "none"]);

  // Delete asks first; Escape keeps it.
  await page.locator(`li.destination[data-id="${id}"]`).getByRole("button", { name: "Delete" }).click();
  const dialog = page.getByRole("dialog", { name: "Delete this destination?" });
  await dialog.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Keep it", "the safe answer has focus");
  await scan(page, "11-delete-confirm-phone");
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "detached" });
  assert.equal((await api.call("GET", `/v1/destinations/${id}`)).status, 200, "Escape deletes nothing");
  await page.locator(`li.destination[data-id="${id}"]`).getByRole("button", { name: "Delete" }).click();
  await dialog.getByRole("button", { name: "Delete destination" }).click();
  await page.locator(`li.destination[data-id="${id}"]`).waitFor({ state: "detached" });
  assert.equal((await api.call("GET", `/v1/destinations/${id}`)).status, 404);
  await context.close();
});

test("setup follows what the admin types: a bad bucket name, a KMS key, a KMS alias", async () => {
  const { context, page } = await openConsole(browser, stack.ready, DESKTOP, seen);
  await page.getByLabel("Bucket", { exact: true }).fill("Bad_Bucket");
  const bucketError = page.locator("#setup-bucket-error");
  await bucketError.filter({ hasText: "bucket" }).waitFor();
  assert.equal(await page.getByLabel("Bucket", { exact: true }).getAttribute("aria-invalid"), "true");

  // A copy never hands out the policy of what the form said before.
  await page.getByLabel("Bucket", { exact: true }).fill("first-bucket");
  await page.locator("#permissions-policy").filter({ hasText: "arn:aws:s3:::first-bucket/*" }).waitFor();
  await page.evaluate(() => navigator.clipboard.writeText(""));
  await page.getByLabel("Bucket", { exact: true }).fill("second-bucket");
  await page.getByRole("button", { name: "Copy permissions policy" }).click();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.ok(!copied.includes("first-bucket"), "a stale policy was copied");

  const key = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
  await page.getByLabel("Bucket", { exact: true }).fill("kms-archive");
  await page.getByLabel("Bucket region").fill("eu-west-1");
  await page.getByLabel("KMS key ARN (optional)").fill(key);
  const permissions = page.locator("#permissions-policy");
  await permissions.filter({ hasText: key }).waitFor();
  assert.equal(await bucketError.isHidden(), true, "the error goes once the name is valid");
  const granted = JSON.parse(await permissions.innerText());
  const kmsStatement = granted.Statement.find((/** @type {any} */ st) => String(st.Action).includes("kms:"));
  assert.equal(kmsStatement.Resource, key);
  let quick = new URLSearchParams(new URL(/** @type {string} */ (await page.locator("#quick-create").getAttribute("href"))).hash.split("?")[1]);
  assert.equal(quick.get("param_KmsKeyArn"), key);
  assert.equal(await page.locator("#quick-create-caveat").isHidden(), true);

  // An alias is granted through its account's keys with kms:ResourceAliases;
  // the template takes key ARNs only, so the link leaves it out and says why.
  const alias = "arn:aws:kms:eu-west-1:111122223333:alias/archive";
  await page.getByLabel("KMS key ARN (optional)").fill(alias);
  await permissions.filter({ hasText: "kms:ResourceAliases" }).waitFor();
  assert.ok(!JSON.parse(await permissions.innerText()).Statement.some((/** @type {any} */ st) => st.Resource === alias),
    "an alias ARN is never an IAM Resource");
  quick = new URLSearchParams(new URL(/** @type {string} */ (await page.locator("#quick-create").getAttribute("href"))).hash.split("?")[1]);
  assert.equal(quick.get("param_KmsKeyArn"), null);
  assert.match(await page.locator("#quick-create-caveat").innerText(), /not an alias/);
  await scan(page, "12-setup-kms-alias-desktop");
  await context.close();
});

test("a broken destination shows Failing and its last error in words; a new folder must pass the checks before it saves", async () => {
  const account = "410987654321";
  const region = "eu-west-1";
  const setup = (await api.call("GET", "/v1/setup?bucket=breaking-archive")).body;
  await createBucket(stack.ready, account, region, "breaking-archive");
  const grant = { service: "iam", op: "put_role_policy", args: { RoleName: "stored-messages-breaking", PolicyName: "write", PolicyDocument: JSON.stringify(setup.permissions_policy) } };
  await asCustomerAdmin(stack.ready, account, region, [
    { service: "iam", op: "create_role", args: { RoleName: "stored-messages-breaking", AssumeRolePolicyDocument: JSON.stringify(setup.trust_policy) } },
    grant,
  ]);
  const created = await api.call("POST", "/v1/destinations", {
    project_id: "breaking", role_arn: `arn:aws:iam::${account}:role/stored-messages-breaking`, region, bucket: "breaking-archive",
    bucket_private_confirmed: true,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.destination.id;
  // The customer's admin removes the role's write permission.
  await asCustomerAdmin(stack.ready, account, region, [
    { service: "iam", op: "delete_role_policy", args: { RoleName: "stored-messages-breaking", PolicyName: "write" } },
  ]);

  const { context, page } = await openConsole(browser, stack.ready, DESKTOP, seen);
  await page.getByRole("button", { name: "Destinations" }).click();
  const card = () => page.locator(`li.destination[data-id="${id}"]`);
  await card().getByRole("button", { name: "Test" }).click();
  await card().locator('[data-status="failing"]').waitFor();
  const lastError = await card().locator(".last-error").innerText();
  assert.match(lastError, /put_object_denied/);
  assert.ok(lastError.length > "put_object_denied".length + 20, `the last error is said in words: ${lastError}`);
  assert.equal(await card().locator('li[data-check="put_object"]').getAttribute("data-status"), "fail");
  await scan(page, "13-destination-failing-desktop");

  // Fixed, then moved to a new folder: Save waits for a passing test.
  await asCustomerAdmin(stack.ready, account, region, [grant]);
  await card().getByRole("button", { name: "Edit" }).click();
  await page.getByLabel("Folder (optional)").fill("archive/2027");
  const saveChanges = page.getByRole("button", { name: "Save changes" });
  assert.equal(await saveChanges.getAttribute("aria-disabled"), "true", "a new folder must pass the checks first");
  await page.getByRole("button", { name: "Test connection" }).click();
  await page.locator("#connect-checks").getByRole("heading", { name: /^All checks passed/ }).waitFor();
  assert.equal(await saveChanges.getAttribute("aria-disabled"), "false");
  await saveChanges.click();
  await card().locator('[data-status="active"]').waitFor();
  const saved = (await api.call("GET", `/v1/destinations/${id}`)).body.destination;
  assert.equal(saved.folder_path, "archive/2027");
  assert.equal(saved.status, "active", "the PATCH re-ran every check and the pass moved it back to active");
  await context.close();
});

/**
 * The status of a GET of `target` exactly as written (no URL
 * normalisation of `..` or `%2e`) with the headers given (fetch may not
 * set Host).
 */
function raw(/** @type {string} */ target, /** @type {Record<string, string>} */ headers) {
  const { hostname, port } = new URL(stack.ready.url);
  return new Promise((resolve, reject) => {
    const request = http.get({ hostname, port, path: target, headers }, (response) => { response.resume(); resolve(response.statusCode); });
    request.on("error", reject);
  });
}

test("the local host serves only its build, and the API only with the token and to its own name", async () => {
  const host = new URL(stack.ready.url).host;
  assert.equal(await raw("/", { Host: host }), 200);
  assert.equal(await raw("/templates/customer-role.yaml", { Host: host }), 200);
  assert.equal(await raw("/v1/setup", { Host: host }), 401, "no token");
  assert.equal(await raw("/v1/setup", { Host: host, Authorization: "Bearer wrong" }), 401, "a wrong token");
  assert.equal(await raw("/v1/setup", { Host: host, Authorization: `Bearer ${api.token}` }), 200);
  // DNS rebinding: a page on another name that resolves to 127.0.0.1.
  assert.equal(await raw("/local/session", { Host: "rebound.example" }), 403);
  assert.equal(await raw("/v1/setup", { Host: "rebound.example", Authorization: `Bearer ${api.token}` }), 403);
  for (const outside of ["/../Makefile", "/%2e%2e/Makefile", "/..%2f..%2fMakefile", "/assets/../../Makefile",
    "/../../../../etc/passwd", "/src/console.ts", "/%00", "/../tools/api_gateway.py"])
    assert.equal(await raw(outside, { Host: host }), 404, outside);
});

test("no secret leaves the page: not the URL, storage, cookies or the console log", async () => {
  const { context, page } = await openConsole(browser, stack.ready, DESKTOP, seen);
  await page.getByRole("button", { name: "Reveal" }).click();
  await page.getByRole("button", { name: "Copy External ID" }).click();
  const kept = await page.evaluate(() => ({
    local: JSON.stringify({ ...localStorage }), session: JSON.stringify({ ...sessionStorage }), cookie: document.cookie,
  }));
  const cookies = await context.cookies();
  await context.close();
  assert.deepEqual(seen.errors, [], "no page error");
  assert.deepEqual(seen.console.filter((m) => /Content Security Policy|Refused to/i.test(m)), [], "nothing was refused by the page's policy");
  for (const secret of [externalId, api.token]) {
    for (const where of [kept.local, kept.session, kept.cookie, JSON.stringify(cookies), ...seen.urls, ...seen.console])
      assert.ok(!where.includes(secret), "a secret reached the URL, storage, a cookie or the console log");
  }
  assert.ok(seen.urls.length > 20, "the requests were watched");
  // Nor the function's own log (every line validate-destination wrote while the pages ran).
  const log = readFileSync(path.join(repo, "target/console/watch.log"), "utf8");
  assert.ok(log.includes("validate-destination"), "the function's log was read");
  for (const secret of [externalId, api.token]) assert.ok(!log.includes(secret), "a secret reached the function's log");
});

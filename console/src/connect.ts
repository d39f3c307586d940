/**
 * Connect: the role ARN and the destination's options, "Test connection"
 * (`POST /v1/destinations/validate`, a dry run), the checklist, and "Save"
 * (`POST /v1/destinations`), offered only once every check passed for the
 * values on screen: a change to the form takes it away again.
 *
 * The same form edits a saved destination (`PATCH` with its `ETag`): a
 * change to how we connect must pass the checks first, as the API itself
 * re-runs them; an access-key destination's key is not editable here (its
 * secret never comes back from the API).
 */

import { ApiError, type Destination, type DestinationBody, type Verdict } from "./api";
import { checklist, summary } from "./checklist";
import type { Context } from "./context";
import { field, h } from "./dom";
import { CHANNELS, RECORD_KINDS, REGIONS } from "./words";

/** Fields whose change re-runs every check (contract section 5, `PATCH`). */
const CONNECTION_FIELDS = ["role_arn", "region", "bucket", "folder_path", "encryption"] as const;

function checkboxGroup(legend: string, name: string, options: ReadonlyArray<readonly [string, string]>, checked: readonly string[]) {
  const boxes = options.map(([value, label]) => {
    const box = h("input", { type: "checkbox", name, value, id: `connect-${name}-${value}`, checked: checked.includes(value) });
    return { box, wrapper: h("div", { class: "choice" }, box, h("label", { for: box.id }, label)) };
  });
  const fieldset = h("fieldset", {}, h("legend", {}, legend), ...boxes.map((b) => b.wrapper));
  return { fieldset, values: () => boxes.filter((b) => b.box.checked).map((b) => b.box.value) };
}

function select(id: string, options: ReadonlyArray<readonly [string, string]>, value: string): HTMLSelectElement {
  return h("select", { id, name: id.replace(/^connect-/, "") }, ...options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

export function connectScreen(context: Context, editing?: { destination: Destination; etag: string | null }): HTMLElement {
  const { api, draft, announce } = context;
  const saved = editing?.destination;
  const keyed = saved?.auth?.mode === "access_key";
  const etag = editing?.etag ?? null;
  let verified: string | null = null; // the form snapshot the last passing test ran on

  const project = h("input", { id: "connect-project", name: "project_id", autocomplete: "off", required: true, value: saved?.project_id ?? "", readonly: Boolean(saved) });
  const role = h("input", {
    id: "connect-role-arn", name: "role_arn", autocomplete: "off", spellcheck: "false", required: !keyed, disabled: keyed,
    placeholder: `e.g. arn:aws:iam::111122223333:role/${context.setup?.role_name_prefix ?? "stored-messages"}-${draft.roleSuffix}`,
    value: keyed ? `access key ${saved?.auth?.access_key_id ?? ""}` : saved?.role_arn ?? "",
  });
  const bucket = h("input", { id: "connect-bucket", name: "bucket", autocomplete: "off", spellcheck: "false", required: true, value: saved?.bucket ?? draft.bucket });
  const folder = h("input", { id: "connect-folder", name: "folder_path", autocomplete: "off", spellcheck: "false", value: saved ? saved.folder_path ?? "" : draft.folder });
  const region = h("input", { id: "connect-region", name: "region", list: "connect-regions", autocomplete: "off", spellcheck: "false", required: true, value: saved?.region ?? draft.region });
  const initialKms = saved?.encryption.kms_key_arn ?? draft.kms;
  const encryption = select("connect-encryption", [
    ["bucket_default", "The bucket's default encryption"],
    ["aes256", "SSE-S3 (AES-256)"],
    ["kms", "SSE-KMS with my key"],
  ], saved?.encryption.mode ?? (draft.kms ? "kms" : "bucket_default"));
  const kms = h("input", { id: "connect-kms", name: "kms_key_arn", autocomplete: "off", spellcheck: "false", value: initialKms });
  const layout = select("connect-layout", [["by_recipient", "By recipient"], ["by_date", "By date"]], saved?.layout ?? "by_recipient");
  const compression = select("connect-compression", [["gzip", "gzip"], ["none", "None"]], saved?.compression ?? "gzip");
  const channels = checkboxGroup("Channels", "channels", CHANNELS, saved?.channels ?? CHANNELS.map(([c]) => c));
  const kinds = checkboxGroup("What to archive", "record_kinds", RECORD_KINDS, saved?.record_kinds ?? ["message"]);
  const confirmPrivate = h("input", { type: "checkbox", id: "connect-private", name: "bucket_private_confirmed", checked: Boolean(saved) });

  const kmsField = field("KMS key ARN", kms, "A key ARN or an alias ARN, in the bucket's region.");
  const syncKms = () => { kmsField.wrapper.hidden = encryption.value !== "kms"; };
  syncKms();

  const body = (): DestinationBody => {
    const folderValue = folder.value.trim().replace(/^\/+|\/+$/g, "");
    const result: DestinationBody = {
      region: region.value.trim(),
      bucket: bucket.value.trim(),
      channels: channels.values(),
      record_kinds: kinds.values(),
      layout: layout.value,
      compression: compression.value,
      encryption: encryption.value === "kms" ? { mode: "kms", kms_key_arn: kms.value.trim() } : { mode: encryption.value },
      bucket_private_confirmed: confirmPrivate.checked,
    };
    if (!saved) result.project_id = project.value.trim();
    if (!keyed) result.role_arn = role.value.trim();
    if (folderValue) result.folder_path = folderValue;
    else if (saved?.folder_path) result.folder_path = null;
    return result;
  };
  /** What a PATCH sends: the fields that differ from the saved destination. */
  const changes = (): DestinationBody => {
    const now = body();
    const current: Record<string, unknown> = { ...saved, folder_path: saved?.folder_path ?? null };
    const changed: DestinationBody = {};
    for (const [name, value] of Object.entries(now)) {
      if (name === "bucket_private_confirmed") continue;
      if (JSON.stringify(value) !== JSON.stringify(current[name] ?? null)) changed[name] = value;
    }
    return changed;
  };
  const connectionChanged = () => CONNECTION_FIELDS.some((name) => name in changes());
  const snapshot = () => JSON.stringify(body());

  const test = h("button", { type: "button", class: "primary", id: "test-connection", disabled: keyed }, "Test connection");
  const save = h("button", { type: "button", class: "primary", id: "save-destination", "aria-disabled": "true", "aria-describedby": "save-hint" }, saved ? "Save changes" : "Save");
  const saveHint = h("p", { class: "hint", id: "save-hint" });
  const results = h("div", { id: "connect-results" });
  const problem = h("p", { class: "field-error", id: "connect-problem", role: "alert", hidden: true });

  /**
   * Why Save is not offered now, or null when it is. A new destination
   * needs a passing test of exactly these values. An edit needs a change
   * and the confirmation; a change to the connection of a role destination
   * needs a passing test too. An access-key destination cannot be tested
   * here (its secret never comes back), so its PATCH is where the API
   * re-runs the checks, and a failure shows the checklist.
   */
  const blocked = (): string | null => {
    if (!saved) return verified === snapshot() ? null : "Save becomes available once Test connection passes every check for these values.";
    if (Object.keys(changes()).length === 0) return "Nothing has changed yet.";
    if (!confirmPrivate.checked) return "Confirm that the bucket blocks public access to save.";
    if (!keyed && connectionChanged() && verified !== snapshot())
      return "This changes how we connect: Save becomes available once Test connection passes every check.";
    return null;
  };
  const syncSave = () => {
    const reason = blocked();
    save.setAttribute("aria-disabled", String(reason !== null));
    saveHint.textContent = reason ?? (saved
      ? keyed && connectionChanged() ? "Saving runs every check with the stored access key first." : "Saves your changes."
      : "Every check passed: save to start archiving.");
  };

  /** The values the checklist on screen was run on. */
  let tested: string | null = null;
  const outdated = h("p", { class: "notice warn", id: "connect-outdated", hidden: true },
    "You changed the form since this test: these results are for the values before. Test connection again.");
  const showVerdict = (verdict: Verdict, on: string | null) => {
    tested = on;
    outdated.hidden = true;
    results.replaceChildren(outdated, checklist(verdict, "connect-checks"));
    announce(summary(verdict));
    (results.querySelector("#connect-checks-summary") as HTMLElement | null)?.focus();
  };
  // An alert region: read out as it appears, so not announced a second time.
  const fail = (error: unknown) => {
    problem.textContent = error instanceof ApiError ? error.message : "Something went wrong: try again.";
    problem.hidden = false;
  };
  const busy = async (button: HTMLButtonElement, work: () => Promise<void>) => {
    if (button.getAttribute("aria-busy") === "true") return;
    button.setAttribute("aria-busy", "true");
    problem.hidden = true;
    try { await work(); } catch (error) { fail(error); } finally { button.removeAttribute("aria-busy"); }
  };

  test.addEventListener("click", () => void busy(test, async () => {
    const sent = snapshot();
    const request = saved ? { ...body(), project_id: saved.project_id } : body();
    const verdict = await api.validate(request);
    verified = verdict.valid ? sent : null;
    showVerdict(verdict, sent);
    syncSave();
  }));
  save.addEventListener("click", () => {
    const reason = blocked();
    if (reason !== null) {
      announce(reason);
      return;
    }
    void busy(save, async () => {
      let outcome;
      try {
        outcome = saved ? await api.patch(saved.id, changes(), etag) : await api.create(body());
      } catch (error) {
        if (saved && error instanceof ApiError && error.status === 412) {
          // Someone saved this destination since the form opened: start
          // again from what is stored now, rather than overwrite it.
          context.go("connect", await api.get(saved.id));
          announce("This destination was changed elsewhere since you opened it. The form now shows it as saved: make your change again.");
          return;
        }
        throw error;
      }
      if (!outcome.ok) {
        verified = null;
        showVerdict(outcome.verdict, null);
        syncSave();
        return;
      }
      announce(saved ? "Changes saved." : `Saved: ${outcome.value.destination.bucket} is connected and archiving.`);
      context.go("destinations");
    });
  });
  const cancel = h("button", { type: "button", class: "secondary", id: "cancel-edit" }, "Cancel");
  cancel.addEventListener("click", () => context.go("destinations"));
  encryption.addEventListener("change", syncKms);
  const form = h("form", { class: "grid", novalidate: true, "aria-describedby": "connect-problem" });
  form.addEventListener("input", () => {
    const now = snapshot();
    if (verified !== now) verified = null;
    outdated.hidden = tested === null || tested === now;
    syncSave();
  });
  form.addEventListener("submit", (event) => event.preventDefault());

  const fieldOf = (label: string, control: HTMLInputElement | HTMLSelectElement, hint?: string) => field(label, control, hint).wrapper;
  form.append(
    fieldOf("Project ID", project, saved ? "A destination stays with its project." : "The messaging project whose messages go to this bucket."),
    fieldOf(keyed ? "Credentials" : "Role ARN", role, keyed ? "An IAM user's access key, kept in AWS Secrets Manager; it cannot be changed here." : "The ARN of the role your admin created, in the bucket's account."),
    fieldOf("Bucket", bucket),
    fieldOf("Folder (optional)", folder),
    fieldOf("Bucket region", region),
    fieldOf("Encryption", encryption),
    kmsField.wrapper,
    fieldOf("Layout", layout, "By recipient: one folder per recipient. By date: one folder per day."),
    fieldOf("Compression", compression),
    channels.fieldset,
    kinds.fieldset,
    h("div", { class: "choice wide" }, confirmPrivate, h("label", { for: "connect-private" }, "I confirm the bucket blocks public access (S3 Block Public Access is on).")),
    h("datalist", { id: "connect-regions" }, ...REGIONS.map((r) => h("option", { value: r }))),
  );
  syncSave();

  const heading = h("h2", { id: "connect-title", tabindex: "-1" }, saved ? `Edit ${saved.bucket}${saved.folder_path ? `/${saved.folder_path}` : ""}` : "Connect the bucket");
  return h(
    "section",
    { class: "screen", "aria-labelledby": "connect-title" },
    heading,
    h("p", {}, saved
      ? "Change how this destination archives. A change to the role, bucket, folder, region or encryption must pass every check before it is saved."
      : "Give the role your admin created and how to archive. Test connection writes one small test object to prove it works; nothing is saved until you save."),
    h("section", { class: "card", "aria-label": "Destination settings" }, form),
    // The results sit above the buttons: focus lands on their heading, and
    // the next Tab reaches Test connection and Save.
    results,
    problem,
    h("div", { class: "buttons" }, test, save, saved ? cancel : null),
    saveHint,
  );
}

/**
 * Setup: the values the customer's AWS admin copies (External ID, our
 * principal, the role name prefix), and a form (bucket, folder, region,
 * KMS key) whose values fill in the trust and permissions policies of
 * `GET /v1/setup` as the admin types, with the CloudFormation quick-create
 * link and the equivalent AWS CLI commands.
 *
 * The External ID stays masked everywhere on screen until revealed, in the
 * policies and commands too; the copy buttons copy it whole.
 */

import { ApiError, type Setup } from "./api";
import { cliCommands, quickCreateLink, roleName } from "./commands";
import { copyButton, field, h, setFieldError } from "./dom";
import type { Context } from "./context";
import { REGIONS } from "./words";

const MASK = "••••••••••••••••";

/** An AWS region code's shape (`eu-west-1`, `us-gov-west-1`), for the link's host. */
const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
/** The template's `RoleNameSuffix` rule. */
const ROLE_SUFFIX = /^[A-Za-z0-9+=,.@_-]{1,40}$/;

/** The setup query a draft asks for: what `GET /v1/setup` fills the policies with. */
function queryOf(draft: { bucket: string; folder: string; kms: string }): string {
  return JSON.stringify([draft.bucket, draft.folder, draft.kms]);
}

/** How long the form waits after a keystroke before asking for new policies. */
const TYPING_PAUSE_MS = 250;

export function setupScreen(context: Context): HTMLElement {
  const { api, draft, announce } = context;
  let setup: Setup | null = context.setup;
  let revealed = false;
  let sequence = 0;
  /** The bucket, folder and KMS key the shown policies were rendered for. */
  let rendered = { bucket: draft.bucket, folder: draft.folder, kms: draft.kms };
  let renderedQuery = setup ? queryOf(draft) : "";
  let invalid = false;

  const show = (text: string) =>
    revealed || !setup ? text : text.replaceAll(setup.external_id, MASK);

  const externalId = h("code", { id: "external-id", class: "secret" }, MASK);
  const reveal = h("button", { type: "button", class: "secondary", "aria-pressed": "false", "aria-controls": "external-id trust-policy cli-commands" }, "Reveal");
  const principal = h("code", { id: "principal-arn" }, "…");
  const prefix = h("code", { id: "role-name-prefix" }, "…");

  const bucket = h("input", { id: "setup-bucket", name: "bucket", autocomplete: "off", spellcheck: "false", placeholder: "e.g. acme-message-archive", value: draft.bucket });
  const folder = h("input", { id: "setup-folder", name: "folder_path", autocomplete: "off", spellcheck: "false", placeholder: "e.g. archive/prod", value: draft.folder });
  const region = h("input", { id: "setup-region", name: "region", list: "regions", autocomplete: "off", spellcheck: "false", placeholder: "e.g. eu-west-1", value: draft.region });
  const kms = h("input", { id: "setup-kms", name: "kms_key_arn", autocomplete: "off", spellcheck: "false", placeholder: "e.g. arn:aws:kms:eu-west-1:111122223333:key/…", value: draft.kms });
  const suffix = h("input", { id: "setup-role-suffix", name: "role_suffix", autocomplete: "off", spellcheck: "false", required: true, value: draft.roleSuffix, pattern: "[A-Za-z0-9+=,.@_-]{1,40}" });
  const fields = {
    bucket: field("Bucket", bucket, "The S3 bucket the archive goes into."),
    folder: field("Folder (optional)", folder, "A folder inside the bucket, such as archive/prod. The role may write only there."),
    region: field("Bucket region", region, "The AWS region the bucket is in, such as eu-west-1."),
    kms: field("KMS key ARN (optional)", kms, "Only if the bucket encrypts with a customer managed KMS key (SSE-KMS)."),
    suffix: field("Role name, after the prefix", suffix, "The role is named prefix-this."),
  };
  const problem = h("p", { class: "field-error", id: "setup-problem", role: "alert", hidden: true });

  const trust = h("pre", { id: "trust-policy", tabindex: "0", "aria-label": "Trust policy" });
  const permissions = h("pre", { id: "permissions-policy", tabindex: "0", "aria-label": "Permissions policy" });
  const cli = h("pre", { id: "cli-commands", tabindex: "0", "aria-label": "AWS CLI commands" });
  const quickCreate = h("a", { id: "quick-create", target: "_blank", rel: "noopener noreferrer" }, "Create the role with CloudFormation (opens the AWS console)");
  const quickCaveat = h("p", { class: "hint", id: "quick-create-caveat", hidden: true });
  const policiesState = h("p", { class: "hint", id: "policies-state", "aria-live": "polite" });

  /**
   * Why the policies, commands and link on screen may not be copied now:
   * they are for other values than the form's, until the answer for the
   * form's values arrives (or while a value is invalid). Null when current.
   */
  const stale = (): string | null => {
    if (!setup) return "The policies are still loading.";
    if (invalid) return "Fix the value marked in the form first: the policies shown are for the last valid values.";
    if (renderedQuery !== queryOf(draft)) return "The policies are being updated for what you typed: copy again in a moment.";
    return null;
  };

  const render = () => {
    if (!setup) return;
    externalId.textContent = revealed ? setup.external_id : MASK;
    reveal.textContent = revealed ? "Hide" : "Reveal";
    reveal.setAttribute("aria-pressed", String(revealed));
    principal.textContent = setup.principal_arn;
    prefix.textContent = setup.role_name_prefix;
    trust.textContent = show(JSON.stringify(setup.trust_policy, null, 2));
    permissions.textContent = JSON.stringify(setup.permissions_policy, null, 2);
    cli.textContent = show(cliCommands(setup, roleName(setup, draft.roleSuffix)));
    const regionOk = draft.region === "" || REGION.test(draft.region);
    const suffixOk = ROLE_SUFFIX.test(draft.roleSuffix);
    setFieldError(region, fields.region.error, regionOk ? null : "must be an AWS region code such as eu-west-1");
    setFieldError(suffix, fields.suffix.error, suffixOk ? null : "1 to 40 letters, digits and +=,.@_- only");
    const link = quickCreateLink(context.customerTemplateUrl, setup, {
      region: regionOk ? draft.region : "", bucket: rendered.bucket, folder: rendered.folder, kms: rendered.kms,
      roleSuffix: suffixOk ? draft.roleSuffix : "archive",
    });
    quickCreate.href = link.url;
    quickCaveat.textContent = link.caveat ?? "";
    quickCaveat.hidden = link.caveat === null;
    const reason = stale();
    policiesState.textContent = reason === null ? "" : invalid ? reason : "Updating the policies for what you typed…";
    for (const pre of [trust, permissions, cli]) pre.setAttribute("aria-busy", String(reason !== null));
  };

  const refresh = async () => {
    sequence += 1;
    const mine = sequence;
    const asked = { bucket: draft.bucket, folder: draft.folder, kms: draft.kms };
    try {
      const fresh = await api.setup({ bucket: asked.bucket, folder_path: asked.folder, kms_key_arn: asked.kms });
      if (mine !== sequence) return; // a later keystroke's answer wins
      setup = fresh;
      context.setup = fresh;
      rendered = asked;
      renderedQuery = queryOf(asked);
      invalid = false;
      problem.hidden = true;
      for (const [control, slot] of [[bucket, fields.bucket], [folder, fields.folder], [kms, fields.kms]] as const)
        setFieldError(control, slot.error, null);
      render();
    } catch (error) {
      if (mine !== sequence) return;
      invalid = true;
      render();
      const message = error instanceof ApiError ? error.message : "The policies could not be rendered.";
      // The API names the parameter at fault ("bucket must be …").
      const target = message.startsWith("bucket") ? [bucket, fields.bucket] as const
        : message.startsWith("folder_path") ? [folder, fields.folder] as const
        : message.startsWith("kms_key_arn") ? [kms, fields.kms] as const : null;
      if (target) setFieldError(target[0], target[1].error, `${message}. The policies below are from the last valid values.`);
      else {
        problem.textContent = message;
        problem.hidden = false;
      }
    }
  };

  let timer: number | undefined;
  const typed = () => {
    draft.bucket = bucket.value.trim();
    draft.folder = folder.value.trim().replace(/^\/+|\/+$/g, "");
    draft.region = region.value.trim();
    draft.kms = kms.value.trim();
    draft.roleSuffix = suffix.value.trim() || "archive";
    invalid = false;
    render();
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void refresh(), TYPING_PAUSE_MS);
  };
  for (const input of [bucket, folder, region, kms, suffix]) input.addEventListener("input", typed);
  reveal.addEventListener("click", () => {
    revealed = !revealed;
    render();
  });

  const secretText = () => setup?.external_id ?? "";
  const heading = h("h2", { tabindex: "-1" }, "Set up your AWS account");
  const screen = h(
    "section",
    { class: "screen", "aria-labelledby": "setup-title" },
    heading,
    h("p", {}, "Your AWS admin creates a role in the account that owns the bucket. The role trusts our principal only with your organisation's External ID, and may only write objects to your bucket."),
    h("section", { class: "card", "aria-labelledby": "values-title" },
      h("h3", { id: "values-title" }, "Your organisation's values"),
      h("dl", { class: "values" },
        h("dt", {}, "External ID"),
        h("dd", {}, externalId, h("span", { class: "actions" }, reveal, copyButton("Copy External ID", secretText, announce))),
        h("dt", {}, "Our principal ARN"),
        h("dd", {}, principal, h("span", { class: "actions" }, copyButton("Copy principal ARN", () => setup?.principal_arn ?? "", announce))),
        h("dt", {}, "Role name prefix"),
        h("dd", {}, prefix, h("span", { class: "actions" }, copyButton("Copy role name prefix", () => setup?.role_name_prefix ?? "", announce))),
      ),
      h("p", { class: "hint" }, "The External ID is made for your organisation and never changes. Keep it out of tickets and chat."),
    ),
    h("section", { class: "card", "aria-labelledby": "where-title" },
      h("h3", { id: "where-title" }, "Where the archive goes"),
      h("form", { class: "grid", novalidate: true, "aria-describedby": "setup-problem" },
        fields.bucket.wrapper, fields.folder.wrapper, fields.region.wrapper, fields.kms.wrapper, fields.suffix.wrapper),
      problem,
      policiesState,
      h("datalist", { id: "regions" }, ...REGIONS.map((r) => h("option", { value: r }))),
    ),
    h("section", { class: "card", "aria-labelledby": "trust-title" },
      h("h3", { id: "trust-title" }, "Trust policy"),
      h("p", { class: "hint" }, "Who may assume the role: our principal, and only with your External ID."),
      trust,
      copyButton("Copy trust policy", () => JSON.stringify(setup?.trust_policy ?? {}, null, 2), announce, stale),
    ),
    h("section", { class: "card", "aria-labelledby": "permissions-title" },
      h("h3", { id: "permissions-title" }, "Permissions policy"),
      h("p", { class: "hint" }, "What the role may do: write objects under your folder, and use your KMS key if you gave one. Nothing else."),
      permissions,
      copyButton("Copy permissions policy", () => JSON.stringify(setup?.permissions_policy ?? {}, null, 2), announce, stale),
    ),
    h("section", { class: "card", "aria-labelledby": "create-title" },
      h("h3", { id: "create-title" }, "Create the role"),
      h("p", {}, quickCreate),
      h("p", { class: "hint" }, "Paste your External ID into the template's ExternalId field: it is left out of the link so that it never lands in a URL or your browser's history."),
      quickCaveat,
      h("p", {}, "Or with the AWS CLI, signed in to the bucket's account:"),
      cli,
      copyButton("Copy AWS CLI commands", () => (setup ? cliCommands(setup, roleName(setup, draft.roleSuffix)) : ""), announce,
        () => stale() ?? (ROLE_SUFFIX.test(draft.roleSuffix) ? null : "Fix the role name first.")),
    ),
    h("p", {}, h("button", { type: "button", class: "primary", id: "go-connect" }, "Next: connect the bucket")),
  );
  heading.id = "setup-title";
  screen.querySelector("#go-connect")?.addEventListener("click", () => context.go("connect"));
  if (setup) render();
  void refresh();
  return screen;
}

/**
 * The checklist of a validation: every check of contract section 5 in its
 * order, each with its status in words (colour is never the only cue), its
 * message, and for a failure its code and remediation.
 */

import type { Verdict } from "./api";
import { h } from "./dom";
import { CHECK_STATUS, checkTitle, inContractOrder } from "./words";

/** One line saying how the validation went, for the heading and the live region. */
export function summary(verdict: Verdict): string {
  const failed = verdict.checks.filter((c) => c.status === "fail");
  if (verdict.valid) {
    const passed = verdict.checks.filter((c) => c.status === "pass").length;
    const other = verdict.checks.length - passed;
    return other === 0 ? `All checks passed (${passed}).` : `All checks passed (${passed}; ${other} did not apply).`;
  }
  if (failed.length === 0) return "The connection was not verified.";
  const names = failed.map((c) => checkTitle(c.name)).join("; ");
  return `${failed.length} ${failed.length === 1 ? "check" : "checks"} failed: ${names}.`;
}

/**
 * The checklist as a section whose heading takes focus (`tabindex=-1`), so
 * that keyboard and screen-reader users land on the result.
 */
export function checklist(verdict: Verdict, id: string): HTMLElement {
  const heading = h("h3", { id: `${id}-summary`, tabindex: "-1", class: verdict.valid ? "ok" : "bad" }, summary(verdict));
  const items = inContractOrder(verdict.checks).map((check) =>
    h(
      "li",
      { class: `check ${check.status}`, "data-check": check.name, "data-status": check.status },
      h("span", { class: `badge ${check.status}` }, CHECK_STATUS[check.status]),
      h("div", {},
        h("p", { class: "check-title" }, checkTitle(check.name), " ", h("code", { class: "check-name" }, check.name)),
        h("p", { class: "check-message" }, check.message),
        check.status === "fail" && check.code ? h("p", { class: "check-code" }, "Code: ", h("code", {}, check.code)) : null,
        check.status === "fail" && check.remediation
          ? h("p", { class: "remediation" }, h("strong", {}, "How to fix it: "), check.remediation)
          : null,
      ),
    ),
  );
  return h("section", { class: "checklist", id, "aria-labelledby": `${id}-summary` }, heading, h("ol", {}, ...items));
}

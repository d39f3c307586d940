/**
 * Destinations: each saved destination with its status and health (last
 * check, last success, the last error in words), and its lifecycle: test
 * now (`POST .../test`), pause and resume (`PATCH status`, a resume re-runs
 * every check), edit, and delete after a confirmation.
 */

import { ApiError, type Destination, type Verdict } from "./api";
import { checklist, summary } from "./checklist";
import type { Context } from "./context";
import { h, when } from "./dom";
import { DESTINATION_STATUS } from "./words";

function where(destination: Destination): string {
  return `s3://${destination.bucket}${destination.folder_path ? `/${destination.folder_path}` : ""}`;
}

/** The modal that asks before a delete; resolves to whether it was confirmed. */
function confirmDelete(destination: Destination): Promise<boolean> {
  const cancel = h("button", { type: "button", class: "secondary", value: "cancel" }, "Keep it");
  const confirm = h("button", { type: "button", class: "danger", value: "delete" }, "Delete destination");
  const dialog = h(
    "dialog",
    { "aria-labelledby": "delete-title", "aria-describedby": "delete-what" },
    h("h2", { id: "delete-title" }, "Delete this destination?"),
    h("p", { id: "delete-what" },
      `${where(destination)} (project ${destination.project_id}) stops receiving messages within a minute. `,
      "What is already in the bucket stays there, and the role is not touched."),
    h("div", { class: "buttons" }, cancel, confirm),
  );
  document.body.append(dialog);
  return new Promise((resolve) => {
    const close = (answer: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    cancel.addEventListener("click", () => close(false));
    confirm.addEventListener("click", () => close(true));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      close(false);
    });
    dialog.showModal();
    cancel.focus(); // the safe answer is the default
  });
}

export function destinationsScreen(context: Context): HTMLElement {
  const { api, announce } = context;
  const list = h("ul", { class: "destinations", "aria-labelledby": "destinations-title" });
  const problem = h("p", { class: "field-error", id: "destinations-problem", role: "alert", hidden: true });
  const refreshButton = h("button", { type: "button", class: "secondary", id: "refresh" }, "Refresh");

  const fail = (error: unknown) => {
    problem.textContent = error instanceof ApiError ? error.message : "Something went wrong: try again.";
    problem.hidden = false;
  };

  const card = (destination: Destination, verdict?: Verdict): HTMLElement => {
    const { health } = destination;
    const titleId = `title-${destination.id}`;
    const status = h("span", { class: `badge ${destination.status}`, "data-status": destination.status }, DESTINATION_STATUS[destination.status]);
    const paused = destination.status === "disabled";
    const actions = {
      test: h("button", { type: "button", class: "secondary", "data-action": "test", "aria-disabled": paused ? "true" : false }, "Test"),
      pause: h("button", { type: "button", class: "secondary", "data-action": paused ? "resume" : "pause" }, paused ? "Resume" : "Pause"),
      edit: h("button", { type: "button", class: "secondary", "data-action": "edit" }, "Edit"),
      remove: h("button", { type: "button", class: "danger", "data-action": "delete" }, "Delete"),
    };
    for (const button of Object.values(actions)) button.setAttribute("aria-describedby", titleId);
    const item = h(
      "li",
      { class: "card destination", "data-id": destination.id },
      h("h3", { id: titleId }, where(destination)),
      h("dl", { class: "facts" },
        h("dt", {}, "Status"), h("dd", {}, status),
        h("dt", {}, "Project"), h("dd", {}, destination.project_id),
        h("dt", {}, "Region"), h("dd", {}, destination.region),
        h("dt", {}, "Account"), h("dd", {}, destination.account_id),
        h("dt", {}, "Writes as"), h("dd", {}, destination.role_arn ?? `access key ${destination.auth?.access_key_id ?? ""}`),
        h("dt", {}, "Last checked"), h("dd", { class: "last-checked" }, when(health.last_checked_at)),
        h("dt", {}, "Last success"), h("dd", {}, when(health.last_ok_at)),
        h("dt", {}, "Last error"), h("dd", { class: "last-error" },
          health.last_error ? `${health.last_error.message} (${health.last_error.code}${health.consecutive_failures > 1 ? `, ${health.consecutive_failures} checks in a row` : ""})` : "None"),
      ),
      paused ? h("p", { class: "hint" }, "Paused: messages sent meanwhile are not archived here. Resume runs every check first.") : null,
      h("div", { class: "buttons" }, actions.test, actions.pause, actions.edit, actions.remove),
      verdict ? checklist(verdict, `checks-${destination.id}`) : null,
    );

    const replace = (next: Destination, shown?: Verdict) => {
      const fresh = card(next, shown);
      item.replaceWith(fresh);
      return fresh;
    };
    /**
     * One action of this card at a time: the card's buttons are disabled
     * while it runs, so that a Test answering after a Pause cannot put the
     * old status back. A destination deleted elsewhere (`404`) leaves the list.
     */
    const run = async (button: HTMLButtonElement, work: () => Promise<void>) => {
      const buttons = Object.values(actions);
      if (buttons.some((b) => b.getAttribute("aria-busy") === "true")) return;
      const wasDisabled = buttons.map((b) => b.disabled);
      button.setAttribute("aria-busy", "true");
      for (const b of buttons) b.disabled = true;
      problem.hidden = true;
      try {
        await work();
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          item.remove();
          announce(`${where(destination)} was deleted elsewhere.`);
          if (!list.querySelector("li")) list.replaceWith(empty());
          heading.focus();
          return;
        }
        fail(error);
      } finally {
        button.removeAttribute("aria-busy");
        buttons.forEach((b, i) => { b.disabled = wasDisabled[i] ?? false; });
        if (item.isConnected && document.activeElement === document.body) button.focus();
      }
    };
    actions.test.addEventListener("click", () => void run(actions.test, async () => {
      if (paused) {
        announce("A paused destination is not tested: resume it, which runs every check.");
        return;
      }
      const verdict = await api.test(destination.id);
      const fresh = replace(verdict.destination ?? destination, verdict);
      announce(`${where(destination)}: ${summary(verdict)}`);
      (fresh.querySelector(`#checks-${CSS.escape(destination.id)}-summary`) as HTMLElement | null)?.focus();
    }));
    actions.pause.addEventListener("click", () => void run(actions.pause, async () => {
      // Status only: a PATCH merges, so no other setting can be lost, and a
      // resume re-runs every check whatever else changed meanwhile.
      const outcome = await api.patch(destination.id, { status: paused ? "active" : "disabled" }, null);
      if (!outcome.ok) {
        const fresh = replace(destination, outcome.verdict);
        announce(`Not resumed: ${summary(outcome.verdict)}`);
        (fresh.querySelector(`#checks-${CSS.escape(destination.id)}-summary`) as HTMLElement | null)?.focus();
        return;
      }
      const fresh = replace(outcome.value.destination);
      announce(paused ? `${where(destination)} resumed.` : `${where(destination)} paused.`);
      (fresh.querySelector(`[data-action="${paused ? "pause" : "resume"}"]`) as HTMLElement | null)?.focus();
    }));
    actions.edit.addEventListener("click", () => void run(actions.edit, async () => {
      context.go("connect", await api.get(destination.id));
    }));
    actions.remove.addEventListener("click", () => void run(actions.remove, async () => {
      if (!(await confirmDelete(destination))) {
        actions.remove.focus();
        return;
      }
      await api.remove(destination.id);
      item.remove();
      announce(`${where(destination)} deleted.`);
      if (!list.querySelector("li")) list.replaceWith(empty());
      heading.focus();
    }));
    return item;
  };

  const empty = () => h("p", { id: "no-destinations" }, "No destinations yet. Set up your AWS account, then connect a bucket.");
  const load = async () => {
    try {
      const destinations = await api.list();
      list.replaceChildren(...destinations.map((d) => card(d)));
      const shown = screen.querySelector("#no-destinations, ul.destinations");
      shown?.replaceWith(destinations.length ? list : empty());
      problem.hidden = true;
    } catch (error) {
      fail(error);
    }
  };
  refreshButton.addEventListener("click", () => void load().then(() => announce("Destinations refreshed.")));

  const heading = h("h2", { id: "destinations-title", tabindex: "-1" }, "Destinations");
  const screen = h(
    "section",
    { class: "screen", "aria-labelledby": "destinations-title", "aria-busy": "true" },
    heading,
    h("p", {}, "Every bucket this organisation archives into, and how it is doing. Health is checked on a schedule, and after any failed write."),
    h("div", { class: "buttons" }, refreshButton, h("button", { type: "button", class: "primary", id: "connect-another" }, "Set up another bucket")),
    problem,
    list,
  );
  screen.querySelector("#connect-another")?.addEventListener("click", () => context.go("setup"));
  void load().then(() => screen.setAttribute("aria-busy", "false"));
  return screen;
}

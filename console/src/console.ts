/**
 * The reference "Connect a destination" console, mounted by a host page.
 *
 * The host (the sending platform's own app; locally the API Gateway
 * stand-in's page, `host.ts`) supplies the API's base and the org's bearer
 * token. The console keeps them in memory only: it writes nothing to the
 * URL, to local or session storage, to cookies or to the console log, so a
 * secret on screen (the External ID) goes nowhere else.
 */

import { Api, type Destination } from "./api";
import { connectScreen } from "./connect";
import type { Context, ScreenName } from "./context";
import { destinationsScreen } from "./destinations";
import { h } from "./dom";
import { setupScreen } from "./setup";
import "./style.css";

export interface ConsoleOptions {
  /** The API's origin and stage (`""`: the page's own origin). */
  apiBase: string;
  /** The org's bearer token, asked for on every call. */
  token: () => string;
  /** Where CloudFormation fetches `infra/customer-role.yaml` from (an HTTPS or S3 URL you host). */
  customerTemplateUrl: string;
}

const SCREENS: ReadonlyArray<readonly [ScreenName, string]> = [
  ["setup", "1. Set up AWS"],
  ["connect", "2. Connect"],
  ["destinations", "Destinations"],
];

/** Renders the console into `root`, replacing what it held. */
export function mountConsole(root: HTMLElement, options: ConsoleOptions): void {
  // What just happened, for everyone: a polite live region, shown as a
  // notice while it has something to say, cleared on each new screen.
  const status = h("div", { class: "notice", role: "status", "aria-live": "polite", id: "announcer" });
  const view = h("div", { id: "view" });
  const tabs = SCREENS.map(([name, label]) => {
    const button = h("button", { type: "button", class: "tab", "data-screen": name }, label);
    button.addEventListener("click", () => context.go(name));
    return button;
  });

  const context: Context = {
    api: new Api(options.apiBase, options.token),
    customerTemplateUrl: options.customerTemplateUrl,
    draft: { bucket: "", folder: "", region: "", kms: "", roleSuffix: "archive" },
    setup: null,
    announce(message: string) {
      // Cleared first so that the same words twice are read twice.
      status.textContent = "";
      window.setTimeout(() => { status.textContent = message; }, 50);
    },
    go(name: ScreenName, edit?: { destination: Destination; etag: string | null }, first = false) {
      const screen = name === "setup" ? setupScreen(context)
        : name === "connect" ? connectScreen(context, edit)
        : destinationsScreen(context);
      view.replaceChildren(screen);
      status.textContent = "";
      for (const tab of tabs) {
        if (tab.dataset.screen === name) tab.setAttribute("aria-current", "page");
        else tab.removeAttribute("aria-current");
      }
      // A new screen's heading takes focus, as a page load would put the
      // reader at its top; not at the first load, where focus starts at
      // the top of the page (the navigation) anyway.
      if (!first) (screen.querySelector("h2") as HTMLElement | null)?.focus();
    },
  };

  root.replaceChildren(
    h("header", { class: "top" },
      h("h1", {}, "Message archive"),
      h("p", { class: "tagline" }, "Every message you send and what happened to it, in your own S3 bucket.")),
    h("nav", { "aria-label": "Archive console" }, ...tabs),
    status,
    view,
  );
  root.removeAttribute("aria-busy");
  context.go("setup", undefined, true);
}

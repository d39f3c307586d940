/**
 * The local host page of `make console` and the browser tests: what a
 * sending platform's own app does before it mounts the console, here
 * against the API Gateway stand-in, whose `/local/session` plays the
 * platform's login and hands out the org's bearer token and the template
 * URL. The token stays in this closure.
 */

import { mountConsole } from "./console";

interface LocalSession {
  token: string;
  customer_template_url: string;
}

async function main(): Promise<void> {
  const root = document.getElementById("app");
  if (!root) return;
  const response = await fetch("/local/session", { cache: "no-store", credentials: "omit" });
  if (!response.ok) {
    root.textContent = "The local session is not available: start the console with `make console`.";
    return;
  }
  const session = (await response.json()) as LocalSession;
  mountConsole(root, {
    apiBase: "",
    token: () => session.token,
    customerTemplateUrl: session.customer_template_url,
  });
}

void main();

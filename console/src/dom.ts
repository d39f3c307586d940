/**
 * The few DOM helpers the screens share. No framework: the page is a
 * handful of forms and lists, and every node it makes is built here with
 * `textContent` (never `innerHTML`), so nothing an API answer or a person
 * typed is ever parsed as markup.
 */

type Attributes = Record<string, string | boolean | number | undefined | null>;
type Child = Node | string | null | undefined | false;

/**
 * An element `tag` with `attributes` (a `false`/`null`/`undefined` value
 * leaves the attribute out, `true` sets it empty) and `children` (strings
 * become text nodes).
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return element;
}

let nextId = 0;

/** A document-unique id with `prefix`, for label/aria wiring. */
export function uid(prefix: string): string {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/**
 * A labelled form field: the label, the control, an optional hint and an
 * error slot the control's `aria-describedby` points at, so a screen reader
 * reads the hint and the error with the field.
 */
export function field(
  label: string,
  control: HTMLInputElement | HTMLSelectElement,
  hint?: string,
): { wrapper: HTMLElement; error: HTMLElement } {
  const id = control.id || uid("field");
  control.id = id;
  const hintNode = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  const described = [hintNode ? `${id}-hint` : "", `${id}-error`].filter(Boolean).join(" ");
  control.setAttribute("aria-describedby", described);
  const wrapper = h("div", { class: "field" }, h("label", { for: id }, label), hintNode, control, error);
  return { wrapper, error };
}

/** Shows `message` in a field's error slot (or clears it), and marks the control. */
export function setFieldError(
  control: HTMLElement,
  error: HTMLElement,
  message: string | null,
): void {
  error.textContent = message ?? "";
  error.hidden = message === null;
  if (message === null) control.removeAttribute("aria-invalid");
  else control.setAttribute("aria-invalid", "true");
}

/**
 * A button that copies `text()` to the clipboard and says so in `status`
 * (the page's polite live region). The text is read when clicked, so a
 * masked value on screen still copies whole; `unavailable` answers why it
 * may not be copied now (what is shown is stale), or null.
 */
export function copyButton(
  label: string,
  text: () => string,
  status: (message: string) => void,
  unavailable: () => string | null = () => null,
): HTMLButtonElement {
  const button = h("button", { type: "button", class: "secondary copy" }, label);
  button.addEventListener("click", async () => {
    const reason = unavailable();
    if (reason !== null) {
      status(reason);
      return;
    }
    try {
      await navigator.clipboard.writeText(text());
      status(`Copied: ${label.replace(/^Copy /, "")}.`);
    } catch {
      status("The browser refused the clipboard: select the text and copy it instead.");
    }
  });
  return button;
}

/** Formats an RFC 3339 time as the reader's local date and time. */
export function when(iso: string | null | undefined): string {
  if (!iso) return "never";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

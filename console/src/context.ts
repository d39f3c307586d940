/** What the screens share: the API, what the admin typed, and navigation. */

import type { Api, Destination, Setup } from "./api";

/** The setup form's values, kept across screens so Connect starts from them. */
export interface Draft {
  bucket: string;
  folder: string;
  region: string;
  kms: string;
  roleSuffix: string;
}

export type ScreenName = "setup" | "connect" | "destinations";

export interface Context {
  api: Api;
  /** The template URL the quick-create link points CloudFormation at (host configuration). */
  customerTemplateUrl: string;
  draft: Draft;
  /** The last `GET /v1/setup` answer, once one came. Memory only. */
  setup: Setup | null;
  /** Says `message` in the page's polite live region. */
  announce(message: string): void;
  /** Shows a screen; `edit` opens Connect on a saved destination. */
  go(screen: ScreenName, edit?: { destination: Destination; etag: string | null }, first?: boolean): void;
}

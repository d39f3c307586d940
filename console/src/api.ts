/**
 * The console's only way out: the API of contract section 5, with the
 * org's bearer token from the host page. Errors are `{"error": {code,
 * message}}` (section 5) and arrive as {@link ApiError}; check results
 * (`422 {valid: false, checks}`) are not errors but a {@link Verdict}.
 */

export type CheckStatus = "pass" | "fail" | "skip";

/** One check of a validation (contract section 5, "A check is"). */
export interface Check {
  name: string;
  status: CheckStatus;
  code: string | null;
  message: string;
  remediation: string | null;
}

/** `GET /v1/setup`: what the customer's admin copies. */
export interface Setup {
  external_id: string;
  principal_arn: string;
  role_name_prefix: string;
  trust_policy: unknown;
  permissions_policy: unknown;
  kms_policy_statement: unknown;
}

export interface Health {
  last_checked_at: string | null;
  last_ok_at: string | null;
  consecutive_failures: number;
  last_error: { code: string; message: string } | null;
}

export type Status = "active" | "failing" | "disabled";

/** A stored destination (contract section 3). */
export interface Destination {
  id: string;
  org_id: string;
  project_id: string;
  role_arn?: string;
  role_session_name?: string;
  auth?: { mode: "role" | "access_key"; access_key_id?: string; credentials_updated_at?: string };
  region: string;
  bucket: string;
  folder_path?: string | null;
  channels: string[];
  record_kinds: string[];
  event_types?: string[] | null;
  layout: string;
  compression: string;
  encryption: { mode: string; kms_key_arn?: string };
  account_id: string;
  status: Status;
  health: Health;
  created_at: string;
  updated_at?: string | null;
}

/** A validation's outcome: every check, in the contract's order. */
export interface Verdict {
  valid: boolean;
  checks: Check[];
  destination?: Destination;
}

/** What a request body of section 3 may hold. */
export type DestinationBody = Record<string, unknown>;

/** A non-2xx answer that is not a check result. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** A saved or changed destination with the `ETag` a later `PATCH` needs. */
export interface Versioned {
  destination: Destination;
  etag: string | null;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; verdict: Verdict };

interface Answer {
  status: number;
  etag: string | null;
  body: unknown;
}

export class Api {
  /**
   * @param base the API's origin and stage, `""` for the page's own origin
   * @param token the org's bearer token, asked for on every call so that a
   *   host page can renew it; held by the host, never stored by the console
   */
  constructor(
    private readonly base: string,
    private readonly token: () => string,
  ) {}

  private async call(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Answer> {
    const init: RequestInit = {
      method,
      cache: "no-store",
      credentials: "omit",
      headers: { Accept: "application/json", Authorization: `Bearer ${this.token()}`, ...headers },
    };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)["Content-Type"] = "application/json";
    }
    let response: Response;
    try {
      response = await fetch(`${this.base}${path}`, init);
    } catch {
      throw new ApiError(0, "network", "The archive API could not be reached. Check your connection and try again.");
    }
    const text = await response.text();
    let parsed: unknown = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
    }
    const answer = { status: response.status, etag: response.headers.get("ETag"), body: parsed };
    if (response.ok || (response.status === 422 && isVerdict(parsed))) return answer;
    const error = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
    if (error?.code) throw new ApiError(response.status, error.code, error.message ?? error.code);
    if (response.status === 401)
      throw new ApiError(401, "unauthorized", "Your session has ended: sign in again.");
    throw new ApiError(response.status, "unexpected", `The archive API answered ${response.status}.`);
  }

  /** `GET /v1/setup`, filled in with what the admin typed so far. */
  async setup(query: { bucket?: string; folder_path?: string; kms_key_arn?: string }): Promise<Setup> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value) params.set(name, value);
    const encoded = params.toString();
    const suffix = encoded ? `?${encoded}` : "";
    return (await this.call("GET", `/v1/setup${suffix}`)).body as Setup;
  }

  /** `POST /v1/destinations/validate`: a dry run, nothing saved. */
  async validate(body: DestinationBody): Promise<Verdict> {
    return (await this.call("POST", "/v1/destinations/validate", body)).body as Verdict;
  }

  /** `POST /v1/destinations`: saved when every check passes, else the checks. */
  async create(body: DestinationBody): Promise<Outcome<Versioned>> {
    return versioned(await this.call("POST", "/v1/destinations", body));
  }

  async list(): Promise<Destination[]> {
    return ((await this.call("GET", "/v1/destinations")).body as { destinations: Destination[] }).destinations;
  }

  async get(id: string): Promise<Versioned> {
    const answer = await this.call("GET", `/v1/destinations/${encodeURIComponent(id)}`);
    return { destination: (answer.body as { destination: Destination }).destination, etag: answer.etag };
  }

  /**
   * `PATCH /v1/destinations/{id}` with `If-Match: etag`: a change to the
   * connection (or a resume) re-runs every check, and `422` carries them.
   */
  async patch(id: string, body: DestinationBody, etag: string | null): Promise<Outcome<Versioned>> {
    const headers: Record<string, string> = etag ? { "If-Match": etag } : {};
    return versioned(await this.call("PATCH", `/v1/destinations/${encodeURIComponent(id)}`, body, headers));
  }

  /** `POST /v1/destinations/{id}/test`: "Test Credentials" on a saved destination. */
  async test(id: string): Promise<Verdict> {
    return (await this.call("POST", `/v1/destinations/${encodeURIComponent(id)}/test`)).body as Verdict;
  }

  async remove(id: string): Promise<void> {
    await this.call("DELETE", `/v1/destinations/${encodeURIComponent(id)}`);
  }
}

function isVerdict(body: unknown): body is Verdict {
  return typeof body === "object" && body !== null && Array.isArray((body as Verdict).checks);
}

function versioned(answer: Answer): Outcome<Versioned> {
  if (answer.status === 422) return { ok: false, verdict: answer.body as Verdict };
  return {
    ok: true,
    value: { destination: (answer.body as { destination: Destination }).destination, etag: answer.etag },
  };
}

/**
 * What the console says about the contract's names: the checks in the
 * order contract section 5 lists them, the channels and record kinds of
 * sections 2 and 3, and the statuses, in words an AWS admin reads.
 */

import type { Check, CheckStatus, Status } from "./api";

/** Contract section 5's checks, in its order, with what each one checks. */
export const CHECKS: ReadonlyArray<readonly [name: string, title: string]> = [
  ["request", "The request is complete"],
  ["role_arn", "Role ARN is well formed"],
  ["role_name_prefix", "Role name has the required prefix"],
  ["bucket_name", "Bucket name follows S3's rules"],
  ["region", "Region is a region code"],
  ["folder_path", "Folder path is valid"],
  ["encryption", "Encryption settings are valid"],
  ["bucket_private_confirmed", "The bucket is confirmed private"],
  ["auth", "Credentials are given one way"],
  ["access_key", "Access key works"],
  ["assume_role", "We can assume your role with your External ID"],
  ["external_id_enforced", "Your role refuses anyone without the External ID"],
  ["put_object", "We can write a test object to your bucket"],
  ["not_public", "The test object is not public"],
];

/** `checks` in the contract's order (unknown names last, as they came). */
export function inContractOrder(checks: readonly Check[]): Check[] {
  const rank = (name: string) => {
    const index = CHECKS.findIndex(([known]) => known === name);
    return index === -1 ? CHECKS.length : index;
  };
  return [...checks].sort((a, b) => rank(a.name) - rank(b.name));
}

export function checkTitle(name: string): string {
  return CHECKS.find(([known]) => known === name)?.[1] ?? name;
}

/** Status words, shown with their colour so that colour is never the only cue. */
export const CHECK_STATUS: Record<CheckStatus, string> = {
  pass: "Passed",
  fail: "Failed",
  skip: "Not run",
};

export const DESTINATION_STATUS: Record<Status, string> = {
  active: "Active",
  failing: "Failing",
  disabled: "Paused",
};

/** Contract section 2's channels. */
export const CHANNELS: ReadonlyArray<readonly [string, string]> = [
  ["email", "Email"],
  ["sms", "SMS"],
  ["push", "Push"],
  ["in_app", "In-app"],
  ["web_push", "Web push"],
  ["whatsapp", "WhatsApp"],
];

export const RECORD_KINDS: ReadonlyArray<readonly [string, string]> = [
  ["message", "Messages"],
  ["event", "Engagement events (deliveries, bounces, opens, clicks)"],
];

/** The commercial regions S3 buckets live in, for the region pickers. */
export const REGIONS: readonly string[] = [
  "us-east-1", "us-east-2", "us-west-1", "us-west-2",
  "af-south-1", "ap-east-1", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2",
  "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-7", "ap-northeast-1",
  "ap-northeast-2", "ap-northeast-3", "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2",
  "eu-west-1", "eu-west-2", "eu-west-3", "eu-south-1", "eu-south-2", "eu-north-1",
  "il-central-1", "me-south-1", "me-central-1", "mx-central-1", "sa-east-1",
];

/**
 * What the admin runs instead of pasting: the AWS CLI commands and the
 * CloudFormation quick-create link for `infra/customer-role.yaml`, built
 * from `GET /v1/setup` and the form. Pure functions of their inputs.
 */

import type { Setup } from "./api";

/** The role name the template makes: `{RoleNamePrefix}-{RoleNameSuffix}`. */
export function roleName(setup: Setup, suffix: string): string {
  return `${setup.role_name_prefix}-${suffix}`;
}

/** The inline policy's name, as the template and the CLI commands call it. */
export const POLICY_NAME = "stored-messages-write";

/** `text` as one single-quoted POSIX shell word. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The two `aws iam` commands that make the role: its trust policy (with
 * the External ID), then its write policy. The policies go inline, so the
 * commands run as pasted with no file to save first.
 */
export function cliCommands(setup: Setup, role: string): string {
  return [
    `aws iam create-role --role-name ${shellQuote(role)} --max-session-duration 3600 \\\n` +
      `  --assume-role-policy-document ${shellQuote(JSON.stringify(setup.trust_policy))}`,
    `aws iam put-role-policy --role-name ${shellQuote(role)} --policy-name ${POLICY_NAME} \\\n` +
      `  --policy-document ${shellQuote(JSON.stringify(setup.permissions_policy))}`,
  ].join("\n");
}

/** The key ARN shape the template's `KmsKeyArn` parameter accepts (no alias). */
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key\/[A-Za-z0-9-]+$/;

export interface QuickCreate {
  url: string;
  /** Why a value the admin gave could not go in the link, if one could not. */
  caveat: string | null;
}

/**
 * The CloudFormation console's quick-create link for the customer role
 * template at `templateUrl`, in `region`, with every parameter filled in
 * but `ExternalId`: the External ID never goes into a URL (browser history,
 * proxies, AWS's own logs), so the admin pastes it into the template's
 * `NoEcho` field. The parameters are the template's (`infra/customer-role.yaml`).
 */
export function quickCreateLink(
  templateUrl: string,
  setup: Setup,
  form: { region: string; bucket: string; folder: string; kms: string; roleSuffix: string },
): QuickCreate {
  const params = new URLSearchParams({
    templateURL: templateUrl,
    stackName: `${setup.role_name_prefix}-${form.roleSuffix}`,
    param_BucketName: form.bucket,
    param_FolderPath: form.folder,
    param_VendorPrincipalArn: setup.principal_arn,
    param_RoleNamePrefix: setup.role_name_prefix,
    param_RoleNameSuffix: form.roleSuffix,
  });
  let caveat: string | null = null;
  if (form.kms && KMS_KEY_ARN.test(form.kms)) params.set("param_KmsKeyArn", form.kms);
  else if (form.kms)
    caveat =
      "The template takes a key ARN, not an alias: IAM matches KMS keys by key ARN only. For an alias, paste the permissions policy above instead.";
  const region = form.region || "us-east-1";
  const host = `https://${encodeURIComponent(region)}.console.aws.amazon.com`;
  return {
    url: `${host}/cloudformation/home?region=${encodeURIComponent(region)}#/stacks/quickcreate?${params}`,
    caveat,
  };
}

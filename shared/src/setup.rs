//! The setup page of an org (`GET /v1/setup`): its External ID, our
//! principal, the policies to paste (rendered by [`crate::s3::policy`])
//! and the Athena tables over the archive ([`crate::athena`]).

use serde_json::{json, Value};

use crate::arn::{KmsKeyArn, Partition};
use crate::credentials::ExternalId;
use crate::s3::{BucketName, FolderPath};

/// What the customer told us so far; each value already parsed.
#[derive(Debug, Default)]
pub struct SetupQuery {
    pub bucket: Option<BucketName>,
    pub folder_path: Option<FolderPath>,
    pub kms_key_arn: Option<KmsKeyArn>,
}

/// The customer's CloudFormation template, served with the policies: its
/// policies are checked against this module's rendering by a test.
pub const CUSTOMER_ROLE_TEMPLATE: &str = include_str!("../../infra/customer-role.yaml");

/// Placeholders shown where the query gave no value yet.
pub const BUCKET_PLACEHOLDER: &str = "YOUR-BUCKET-NAME";
pub const KMS_PLACEHOLDER: &str = "arn:aws:kms:YOUR-REGION:YOUR-ACCOUNT-ID:key/YOUR-KEY-ID";

/// The partition our principal lives in; customers' resources share it.
fn partition_of(principal_arn: &str) -> Partition {
    principal_arn
        .split(':')
        .nth(1)
        .and_then(Partition::parse)
        .unwrap_or(Partition::Aws)
}

/// The `GET /v1/setup` answer (CONTRACT section 5): every policy filled in
/// where the query gives a value, a placeholder where it does not. A KMS
/// alias is rendered through the keys it may point at, never as a
/// `Resource` (see [`crate::s3::policy::customer_kms_statement`]).
pub fn render(
    external_id: &ExternalId,
    principal_arn: &str,
    role_name_prefix: &str,
    query: &SetupQuery,
) -> Value {
    let partition = partition_of(principal_arn);
    let bucket = query
        .bucket
        .as_ref()
        .map_or(BUCKET_PLACEHOLDER, BucketName::as_str);
    let folder = query.folder_path.as_ref().map(FolderPath::as_str);
    let kms = query.kms_key_arn.as_ref();
    json!({
        "external_id": external_id.expose(),
        "principal_arn": principal_arn,
        "role_name_prefix": role_name_prefix,
        "trust_policy": crate::credentials::trust_policy(principal_arn, external_id),
        "permissions_policy": crate::s3::policy::permissions_policy(partition, bucket, folder, kms),
        "kms_policy_statement": kms.map_or_else(
            || crate::s3::policy::kms_statement(KMS_PLACEHOLDER),
            crate::s3::policy::customer_kms_statement,
        ),
        // One-click alternative to pasting: deploy with the values above as parameters.
        "cloudformation_template": CUSTOMER_ROLE_TEMPLATE,
        // Query the archive: the tables over this bucket and folder, by layout.
        "athena": crate::athena::tables(bucket, folder),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_fills_in_what_the_query_gives() {
        let xid = ExternalId::generate().unwrap();
        let principal = "arn:aws:iam::123456789012:role/stored-messages-functions";
        let empty = render(&xid, principal, "stored-messages", &SetupQuery::default());
        assert_eq!(empty["external_id"], xid.expose());
        assert_eq!(
            empty["permissions_policy"]["Statement"][0]["Resource"],
            "arn:aws:s3:::YOUR-BUCKET-NAME/*"
        );
        assert_eq!(empty["kms_policy_statement"]["Resource"], KMS_PLACEHOLDER);
        assert_eq!(
            empty["trust_policy"]["Statement"][0]["Principal"]["AWS"],
            principal
        );
        assert!(empty["athena"]["by_date"]["events"]
            .as_str()
            .unwrap()
            .contains("LOCATION 's3://YOUR-BUCKET-NAME/events/'"));

        let query = SetupQuery {
            bucket: Some(BucketName::parse("acme-archive").unwrap()),
            folder_path: Some(FolderPath::parse("archive/prod").unwrap()),
            kms_key_arn: Some(
                KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:key/k-1").unwrap(),
            ),
        };
        let filled = render(&xid, principal, "stored-messages", &query);
        assert!(filled["athena"]["by_recipient"]["messages"]
            .as_str()
            .unwrap()
            .contains("LOCATION 's3://acme-archive/archive/prod/'"));
        assert_eq!(
            filled["permissions_policy"]["Statement"][0]["Resource"],
            "arn:aws:s3:::acme-archive/archive/prod/*"
        );
        assert_eq!(
            filled["permissions_policy"]["Statement"][1]["Resource"],
            "arn:aws:kms:eu-west-1:111122223333:key/k-1"
        );
        assert_eq!(
            filled["kms_policy_statement"]["Resource"],
            "arn:aws:kms:eu-west-1:111122223333:key/k-1"
        );

        let alias = SetupQuery {
            kms_key_arn: Some(
                KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:alias/message-archive")
                    .unwrap(),
            ),
            ..SetupQuery::default()
        };
        let aliased = render(&xid, principal, "stored-messages", &alias);
        for statement in [
            &aliased["permissions_policy"]["Statement"][1],
            &aliased["kms_policy_statement"],
        ] {
            assert_eq!(
                statement["Resource"],
                "arn:aws:kms:eu-west-1:111122223333:key/*"
            );
            assert_eq!(
                statement["Condition"]["ForAnyValue:StringEquals"]["kms:ResourceAliases"],
                "alias/message-archive"
            );
        }
    }

    #[test]
    fn partition_follows_the_principal() {
        let xid = ExternalId::generate().unwrap();
        let cn = render(
            &xid,
            "arn:aws-cn:iam::123456789012:role/x",
            "p",
            &SetupQuery::default(),
        );
        assert_eq!(
            cn["permissions_policy"]["Statement"][0]["Resource"],
            "arn:aws-cn:s3:::YOUR-BUCKET-NAME/*"
        );
    }
}

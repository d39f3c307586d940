//! IAM policy documents. One renderer for the session policy we attach to
//! every AssumeRole and for the policies customers paste, so what we ask a
//! customer to grant and what we use can never drift apart.
//!
//! Every `Resource` here is built from parsed values only (a bucket name, a
//! folder without `*`, a KMS key ARN), so the only wildcard any of them holds
//! is the trailing `/*` we put there ourselves; a property test over every
//! renderer keeps it so.

use serde_json::{json, Value};

use super::{Encryption, S3Target};
use crate::arn::{KmsKeyArn, Partition};

/// What S3 asks KMS for when it encrypts an object with SSE-KMS under the
/// writer's identity: `GenerateDataKey` for every object, `Decrypt` where S3
/// must open a data key it made earlier (S3 Bucket Keys, multipart uploads).
/// AWS S3 User Guide, "Using server-side encryption with AWS KMS keys
/// (SSE-KMS)", Permissions. Never `kms:Encrypt`: S3 does not call it.
pub const KMS_ACTIONS: [&str; 2] = ["kms:GenerateDataKey", "kms:Decrypt"];

/// The objects a destination may write: its folder, or the whole bucket.
pub fn object_resource(partition: Partition, bucket: &str, folder: Option<&str>) -> String {
    let p = partition.as_str();
    match folder {
        Some(folder) => format!("arn:{p}:s3:::{bucket}/{folder}/*"),
        None => format!("arn:{p}:s3:::{bucket}/*"),
    }
}

/// The statement granting our writes: `s3:PutObject` only, never read or list.
pub fn put_object_statement(resource: &str) -> Value {
    json!({
        "Sid": "StoredMessagesWriteArchive",
        "Effect": "Allow",
        "Action": "s3:PutObject",
        "Resource": resource,
    })
}

/// The keys of one account and region, as an IAM `Resource`: the form an
/// alias must be granted through, because IAM matches KMS keys by key ARN
/// only and an alias ARN as a `Resource` matches no key (AWS KMS Developer
/// Guide, "Specifying KMS keys in IAM policy statements").
fn keys_of(partition: Partition, region: &str, account: &str) -> String {
    format!("arn:{}:kms:{region}:{account}:key/*", partition.as_str())
}

/// The KMS statement for one key as IAM will match it: a key ARN as is; an
/// alias through the keys of its account and region, narrowed with
/// `kms:ResourceAliases` to the keys that alias points at. What a customer
/// pastes (`kms_policy_statement` of `GET /v1/setup`, CONTRACT section 5),
/// and the base of our session policy's statement for a `kms` destination.
pub fn customer_kms_statement(key: &KmsKeyArn) -> Value {
    match key.alias_name() {
        None => kms_statement(key.as_str()),
        Some(alias) => {
            let mut statement =
                kms_statement(&keys_of(key.partition(), key.region(), key.account()));
            statement["Condition"] = json!({
                "ForAnyValue:StringEquals": { "kms:ResourceAliases": alias }
            });
            statement
        }
    }
}

/// The KMS statement with a literal resource (a key ARN, or the setup page's
/// placeholder before the customer named their key).
pub fn kms_statement(resource: &str) -> Value {
    json!({
        "Sid": "StoredMessagesEncryptArchive",
        "Effect": "Allow",
        "Action": KMS_ACTIONS,
        "Resource": resource,
    })
}

/// The permissions policy of a customer role: write-only, to one bucket
/// (and folder), plus the KMS statement when the bucket uses a customer key.
pub fn permissions_policy(
    partition: Partition,
    bucket: &str,
    folder: Option<&str>,
    kms_key: Option<&KmsKeyArn>,
) -> Value {
    let mut statements = vec![put_object_statement(&object_resource(
        partition, bucket, folder,
    ))];
    statements.extend(kms_key.map(customer_kms_statement));
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The KMS use S3 makes for this destination's objects, on our session's
/// behalf, whatever the encryption mode.
///
/// A session policy narrows everything the session does, including the
/// `kms:GenerateDataKey` S3 calls with our identity when the bucket's
/// default encryption (or our `aws:kms` header) names a customer key. Without
/// this statement a customer who granted their role the key still gets
/// `... because no session policy allows the kms:GenerateDataKey action`
/// and can do nothing about it (real-setups B01). The role's own policies
/// and the key policy still decide; this only stops us from narrowing them
/// away. Limited to calls made through S3 in the bucket's region
/// (`kms:ViaService`) for this destination's objects, or for the bucket
/// itself, which is the encryption context S3 uses for an S3 Bucket Key
/// (`kms:EncryptionContext:aws:s3:arn`; S3 User Guide, "Encryption context").
fn kms_session_statement(partition: Partition, target: &S3Target) -> Value {
    let region = target.region.as_str();
    let mut statement = match &target.encryption {
        Encryption::Kms { kms_key_arn } => customer_kms_statement(kms_key_arn),
        // The bucket default's key is not ours to know. S3 requires it in
        // the bucket's region, but it may belong to another account (a
        // central key account of an AWS Organization): hence any account,
        // the one wildcard we write ourselves, from no input. The conditions
        // below keep it to S3 encrypting this destination's objects, and the
        // role's policies and the key policy still decide.
        Encryption::BucketDefault | Encryption::Aes256 => {
            kms_statement(&keys_of(partition, region, "*"))
        }
    };
    let folder = target.folder_path.as_ref().map(|f| f.as_str());
    let bucket = target.bucket.as_str();
    let conditions = statement
        .as_object_mut()
        .map(|s| s.entry("Condition").or_insert_with(|| json!({})));
    if let Some(Value::Object(conditions)) = conditions {
        conditions.insert(
            "StringEquals".to_owned(),
            json!({ "kms:ViaService": format!("s3.{region}.{}", partition.dns_suffix()) }),
        );
        conditions.insert(
            "StringLike".to_owned(),
            json!({ "kms:EncryptionContext:aws:s3:arn": [
                object_resource(partition, bucket, folder),
                format!("arn:{}:s3:::{bucket}", partition.as_str()),
            ] }),
        );
    }
    statement["Sid"] = json!("StoredMessagesS3UsesKms");
    statement
}

/// The session policy for one destination. AWS intersects it with the
/// role's own policies, so even an over-permissive customer role only lets
/// us write where the destination says, and let S3 use KMS for exactly
/// those writes.
pub fn session_policy(partition: Partition, target: &S3Target) -> String {
    let resource = object_resource(
        partition,
        target.bucket.as_str(),
        target.folder_path.as_ref().map(|f| f.as_str()),
    );
    json!({
        "Version": "2012-10-17",
        "Statement": [put_object_statement(&resource), kms_session_statement(partition, target)],
    })
    .to_string()
}

/// Every string an IAM policy matches with wildcards: `Resource` values and
/// the values of `*Like` conditions. For the property tests here and in the
/// template test.
pub fn wildcard_matched_values(policy: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let statements = match &policy["Statement"] {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let strings = |value: &Value, out: &mut Vec<String>| match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => {
            out.extend(items.iter().filter_map(|v| v.as_str().map(str::to_owned)))
        }
        _ => {}
    };
    for statement in &statements {
        strings(&statement["Resource"], &mut out);
        if let Some(conditions) = statement["Condition"].as_object() {
            for (operator, tests) in conditions {
                if operator.contains("Like") {
                    for value in tests.as_object().into_iter().flat_map(|t| t.values()) {
                        strings(value, &mut out);
                    }
                }
            }
        }
    }
    out
}

/// Whether a wildcard-matched value names exactly what we meant: no IAM
/// wildcard (`*`, `?`) or policy variable (`$`) but one trailing `/*`, and
/// never a KMS alias (which matches no key). The single exception is the
/// account of "any key in this region" (`arn:P:kms:REGION:*:key/*`), which
/// only the session policy of a bucket-default destination holds; see
/// `kms_session_statement`.
pub fn is_exact_resource(value: &str) -> bool {
    let stem = value.strip_suffix("/*").unwrap_or(value);
    let stem = match stem.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "kms", region, "*", "key"]
            if crate::destination::Region::parse(region).is_ok() =>
        {
            ""
        }
        _ => stem,
    };
    !stem.contains(['*', '?', '$']) && !value.contains(":alias/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::ExternalId;
    use crate::s3::{BucketName, FolderPath};
    use proptest::prelude::*;

    fn destination(folder: Option<&str>, encryption: Encryption) -> S3Target {
        S3Target {
            region: crate::destination::Region::parse("eu-west-1").unwrap(),
            bucket: BucketName::parse("acme-archive").unwrap(),
            folder_path: folder.map(|f| FolderPath::parse(f).unwrap()),
            layout: Default::default(),
            compression: Default::default(),
            encryption,
            bucket_private_confirmed: true,
        }
    }

    fn session(target: &S3Target) -> Value {
        serde_json::from_str(&session_policy(Partition::Aws, target)).unwrap()
    }

    #[test]
    fn session_policy_limits_writes_to_the_folder_and_kms_to_s3_for_those_writes() {
        let policy = session(&destination(Some("archive/prod"), Encryption::Aes256));
        assert_eq!(
            policy["Statement"][0],
            json!({
                "Sid": "StoredMessagesWriteArchive", "Effect": "Allow", "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::acme-archive/archive/prod/*"
            })
        );
        assert_eq!(
            policy["Statement"][1],
            json!({
                "Sid": "StoredMessagesS3UsesKms", "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": "arn:aws:kms:eu-west-1:*:key/*",
                "Condition": {
                    "StringEquals": { "kms:ViaService": "s3.eu-west-1.amazonaws.com" },
                    "StringLike": { "kms:EncryptionContext:aws:s3:arn": [
                        "arn:aws:s3:::acme-archive/archive/prod/*", "arn:aws:s3:::acme-archive"
                    ] }
                }
            })
        );
    }

    #[test]
    fn bucket_default_encryption_lets_s3_use_the_owners_keys_in_the_bucket_region() {
        // Real-setups B01: the bucket encrypts with a customer key by default;
        // without a KMS statement every write is denied by our own session policy.
        let policy = session(&destination(None, Encryption::BucketDefault));
        let kms = &policy["Statement"][1];
        assert_eq!(kms["Action"], json!(KMS_ACTIONS));
        // Any account: a bucket's default key may live in a central key account.
        assert_eq!(kms["Resource"], "arn:aws:kms:eu-west-1:*:key/*");
        assert_eq!(
            kms["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"][0],
            "arn:aws:s3:::acme-archive/*"
        );
    }

    #[test]
    fn kms_destinations_may_use_their_key_only() {
        let key = KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:key/abcd-1").unwrap();
        let policy = session(&destination(None, Encryption::Kms { kms_key_arn: key }));
        assert_eq!(
            policy["Statement"][1]["Resource"],
            "arn:aws:kms:eu-west-1:111122223333:key/abcd-1"
        );
        assert_eq!(
            policy["Statement"][1]["Condition"]["StringEquals"]["kms:ViaService"],
            "s3.eu-west-1.amazonaws.com"
        );

        let alias = KmsKeyArn::parse("arn:aws:kms:eu-west-1:444455556666:alias/archive").unwrap();
        let policy = session(&destination(None, Encryption::Kms { kms_key_arn: alias }));
        let kms = &policy["Statement"][1];
        assert_eq!(kms["Resource"], "arn:aws:kms:eu-west-1:444455556666:key/*");
        assert_eq!(
            kms["Condition"]["ForAnyValue:StringEquals"]["kms:ResourceAliases"],
            "alias/archive"
        );
        assert!(
            kms["Condition"]["StringLike"].is_object(),
            "all three conditions hold together"
        );
    }

    #[test]
    fn customer_policies() {
        let key = KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:key/k").unwrap();
        let perms = permissions_policy(Partition::Aws, "b-1", Some("f"), Some(&key));
        assert_eq!(perms["Statement"][0]["Resource"], "arn:aws:s3:::b-1/f/*");
        assert_eq!(perms["Statement"][0]["Action"], "s3:PutObject");
        assert_eq!(
            perms["Statement"][1]["Resource"],
            "arn:aws:kms:eu-west-1:111122223333:key/k"
        );
        assert_eq!(
            permissions_policy(Partition::Aws, "b-1", None, None)["Statement"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn an_alias_is_granted_through_its_keys_never_as_a_resource() {
        // Real-setups B02: an alias ARN as Resource matches no key.
        let alias =
            KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:alias/message-archive").unwrap();
        let statement = customer_kms_statement(&alias);
        assert_eq!(
            statement["Resource"],
            "arn:aws:kms:eu-west-1:111122223333:key/*"
        );
        assert_eq!(
            statement["Condition"],
            json!({ "ForAnyValue:StringEquals": { "kms:ResourceAliases": "alias/message-archive" } })
        );
    }

    #[test]
    fn exactness_is_judged_on_what_iam_matches() {
        for exact in [
            "arn:aws:s3:::b/f/*",
            "arn:aws:s3:::b",
            "arn:aws:kms:eu-west-1:111122223333:key/*",
            "arn:aws:kms:eu-west-1:*:key/*",
        ] {
            assert!(is_exact_resource(exact), "{exact}");
        }
        for widened in [
            "arn:aws:s3:::b/*/*",
            "arn:aws:s3:::b/team*/*",
            "arn:aws:s3:::b/a?/*",
            "*",
            "arn:aws:kms:eu-west-1:111122223333:alias/x",
            "arn:aws:s3:::b/${aws:username}/*",
            "arn:aws:kms:*:*:key/*",
            "arn:aws:kms:eu-west-1:*:*",
            "arn:aws:kms:eu-west-1:*:key/a*",
        ] {
            assert!(!is_exact_resource(widened), "{widened}");
        }
    }

    fn folder_strategy() -> impl Strategy<Value = Option<String>> {
        // Any text, then kept only if the destination rules accept it: the
        // property is about every folder a customer can get past us.
        proptest::option::of("[A-Za-z0-9!_.'()*?$/ -]{1,40}")
            .prop_filter("accepted folders only", |f| {
                f.as_deref().is_none_or(|f| FolderPath::parse(f).is_ok())
            })
    }

    fn kms_strategy() -> impl Strategy<Value = Option<KmsKeyArn>> {
        proptest::option::of(
            (
                "(key|alias)",
                "[A-Za-z0-9/_*-]{1,20}",
                "(aws|aws-cn|aws-us-gov)",
            )
                .prop_filter_map("accepted KMS ARNs only", |(kind, id, partition)| {
                    KmsKeyArn::parse(&format!(
                        "arn:{partition}:kms:eu-west-1:111122223333:{kind}/{id}"
                    ))
                    .ok()
                }),
        )
    }

    proptest! {
        /// Real-setups B03: no accepted input widens any policy we render or send.
        #[test]
        fn no_rendered_policy_has_a_wildcard_but_the_trailing_one(
            folder in folder_strategy(),
            kms in kms_strategy(),
            mode in 0..3u8,
        ) {
            let encryption = match (mode, kms.clone()) {
                (0, _) => Encryption::BucketDefault,
                (1, _) | (_, None) => Encryption::Aes256,
                (_, Some(kms_key_arn)) => Encryption::Kms { kms_key_arn },
            };
            let d = destination(folder.as_deref(), encryption);
            let xid = ExternalId::generate().unwrap();
            let setup = crate::setup::render(&xid, "arn:aws:iam::123456789012:role/stored-messages-functions", "stored-messages", &crate::setup::SetupQuery {
                bucket: Some(d.bucket.clone()),
                folder_path: d.folder_path.clone(),
                kms_key_arn: kms.clone(),
            });
            let rendered = [
                session(&d),
                permissions_policy(Partition::Aws, d.bucket.as_str(), folder.as_deref(), kms.as_ref()),
                setup["permissions_policy"].clone(),
                json!({ "Statement": [setup["kms_policy_statement"].clone()] }),
            ];
            for policy in &rendered {
                let values = wildcard_matched_values(policy);
                prop_assert!(!values.is_empty());
                for value in values {
                    prop_assert!(is_exact_resource(&value), "{value} in {policy}");
                }
            }
        }
    }
}

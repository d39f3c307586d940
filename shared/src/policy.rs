//! IAM policy documents. One renderer for the session policy we attach to
//! every AssumeRole and for the policies customers paste, so what we ask a
//! customer to grant and what we use can never drift apart.

use serde_json::{json, Value};

use crate::arn::{KmsKeyArn, Partition};
use crate::credentials::ExternalId;
use crate::destination::{BucketName, Encryption, FolderPath};

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

/// The KMS permissions S3 needs to encrypt with a customer key on our behalf.
pub fn kms_statement(key: &str) -> Value {
    json!({
        "Sid": "StoredMessagesEncryptArchive",
        "Effect": "Allow",
        "Action": ["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"],
        "Resource": key,
    })
}

/// The trust policy of a customer role: only our principal, and only with the
/// org's External ID (the confused-deputy guard).
pub fn trust_policy(principal_arn: &str, external_id: &ExternalId) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "StoredMessagesAssumeRole",
            "Effect": "Allow",
            "Principal": { "AWS": principal_arn },
            "Action": "sts:AssumeRole",
            "Condition": { "StringEquals": { "sts:ExternalId": external_id.expose() } },
        }],
    })
}

/// The permissions policy of a customer role: write-only, to one bucket
/// (and folder), plus the KMS statement when the bucket uses a customer key.
pub fn permissions_policy(
    partition: Partition,
    bucket: &str,
    folder: Option<&str>,
    kms_key: Option<&str>,
) -> Value {
    let mut statements = vec![put_object_statement(&object_resource(
        partition, bucket, folder,
    ))];
    statements.extend(kms_key.map(kms_statement));
    json!({ "Version": "2012-10-17", "Statement": statements })
}

fn kms_session_statement(key: &KmsKeyArn) -> Value {
    if key.is_alias() {
        // KMS authorises against the key an alias points to, never the alias
        // ARN, so an alias can only be matched through kms:ResourceAliases.
        let alias = key
            .as_str()
            .rsplit_once(":alias/")
            .map_or("", |(_, name)| name);
        let mut statement = kms_statement("*");
        statement["Condition"] = json!({
            "ForAnyValue:StringEquals": { "kms:ResourceAliases": format!("alias/{alias}") }
        });
        statement
    } else {
        kms_statement(key.as_str())
    }
}

/// The session policy for one destination. AWS intersects it with the
/// role's own policies, so even an over-permissive customer role only lets
/// us write where the destination says.
pub fn session_policy(
    partition: Partition,
    bucket: &BucketName,
    folder: Option<&FolderPath>,
    encryption: &Encryption,
) -> String {
    let resource = object_resource(partition, bucket.as_str(), folder.map(FolderPath::as_str));
    let mut statements = vec![put_object_statement(&resource)];
    if let Encryption::Kms { kms_key_arn } = encryption {
        statements.push(kms_session_statement(kms_key_arn));
    }
    json!({ "Version": "2012-10-17", "Statement": statements }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket() -> BucketName {
        BucketName::parse("acme-archive").unwrap()
    }

    #[test]
    fn session_policy_limits_to_the_folder() {
        let folder = FolderPath::parse("archive/prod").unwrap();
        let policy: Value = serde_json::from_str(&session_policy(
            Partition::Aws,
            &bucket(),
            Some(&folder),
            &Encryption::Aes256,
        ))
        .unwrap();
        assert_eq!(
            policy,
            json!({"Version": "2012-10-17", "Statement": [{
                "Sid": "StoredMessagesWriteArchive", "Effect": "Allow", "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::acme-archive/archive/prod/*"
            }]})
        );
    }

    #[test]
    fn session_policy_without_folder_covers_the_bucket_in_its_partition() {
        let policy: Value = serde_json::from_str(&session_policy(
            Partition::AwsCn,
            &bucket(),
            None,
            &Encryption::BucketDefault,
        ))
        .unwrap();
        assert_eq!(
            policy["Statement"][0]["Resource"],
            "arn:aws-cn:s3:::acme-archive/*"
        );
        assert_eq!(policy["Statement"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn customer_policies() {
        let xid = ExternalId::parse("abcdefghijklmnopqrstuvwxyz0123456789").unwrap();
        let trust = trust_policy("arn:aws:iam::123456789012:role/sm", &xid);
        assert_eq!(
            trust["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::123456789012:role/sm"
        );
        assert_eq!(
            trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
            xid.expose()
        );
        assert_eq!(trust["Statement"][0]["Action"], "sts:AssumeRole");
        let perms = permissions_policy(
            Partition::Aws,
            "b-1",
            Some("f"),
            Some("arn:aws:kms:eu-west-1:111122223333:key/k"),
        );
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
    fn kms_destinations_may_use_their_key_only() {
        let key = KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:key/abcd-1").unwrap();
        let policy: Value = serde_json::from_str(&session_policy(
            Partition::Aws,
            &bucket(),
            None,
            &Encryption::Kms { kms_key_arn: key },
        ))
        .unwrap();
        assert_eq!(
            policy["Statement"][1]["Resource"],
            "arn:aws:kms:eu-west-1:111122223333:key/abcd-1"
        );
        assert_eq!(
            policy["Statement"][1]["Action"],
            json!(["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"])
        );

        let alias = KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:alias/archive").unwrap();
        let policy: Value = serde_json::from_str(&session_policy(
            Partition::Aws,
            &bucket(),
            None,
            &Encryption::Kms { kms_key_arn: alias },
        ))
        .unwrap();
        assert_eq!(policy["Statement"][1]["Resource"], "*");
        assert_eq!(
            policy["Statement"][1]["Condition"]["ForAnyValue:StringEquals"]["kms:ResourceAliases"],
            "alias/archive"
        );
    }
}

//! The S3 kind's checks (CONTRACT section 5): the static checks of its
//! fields, the `put_object` probe and the `not_public` read, and the
//! remediation for each way the probe can fail, addressed to whoever can
//! fix it.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::keys::probe_key;
use super::put::{put, PutTarget};
use super::{BucketName, Encryption, FolderPath, Layout, S3Target};
use crate::arn::KmsKeyArn;
use crate::checks::{
    enum_field, get_str, probe_body, required, Check, LiveCheck, Purpose, Required,
};
use crate::credentials::Identity;
use crate::destination::{Auth, Destination, Region};
use crate::failure::{DeniedBy, FailureCode};
use crate::write::{encode, Compression, WriteError, Written};

/// The S3 fields of a request body, parsed to the point where each has its
/// own check; what does not even have the right JSON type is a problem of
/// the `request` check.
pub(crate) struct Fields<'a> {
    layout: Option<Layout>,
    compression: Option<Compression>,
    encryption_mode: Option<(&'a str, Option<&'a str>)>,
    region_text: Option<&'a str>,
    bucket_text: Option<&'a str>,
    folder_text: Option<&'a str>,
    confirmed: Option<bool>,
}

impl<'a> Fields<'a> {
    pub(crate) fn parse(body: &'a Map<String, Value>, problems: &mut Vec<String>) -> Self {
        let layout = enum_field::<Layout>(body, "layout", "by_recipient or by_date", problems);
        let compression = enum_field::<Compression>(body, "compression", "gzip or none", problems);
        let encryption_mode = match body.get("encryption") {
            None | Some(Value::Null) => Some(("bucket_default", None)),
            Some(Value::Object(e)) => {
                match (e.get("mode").and_then(Value::as_str), e.get("kms_key_arn")) {
                    (Some(m @ ("bucket_default" | "aes256")), _) => Some((m, None)),
                    (Some("kms"), key) => {
                        Some(("kms", Some(key.and_then(Value::as_str).unwrap_or_default())))
                    }
                    _ => {
                        problems
                            .push("encryption.mode must be bucket_default, aes256 or kms".into());
                        None
                    }
                }
            }
            Some(_) => {
                problems.push("encryption must be an object with a mode".into());
                None
            }
        };
        let region_text = get_str(body, "region", problems);
        let bucket_text = get_str(body, "bucket", problems);
        let folder_text = get_str(body, "folder_path", problems).filter(|f| !f.is_empty());
        let confirmed = match body.get("bucket_private_confirmed") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                problems.push("bucket_private_confirmed must be a boolean".into());
                None
            }
        };
        Self {
            layout,
            compression,
            encryption_mode,
            region_text,
            bucket_text,
            folder_text,
            confirmed,
        }
    }

    /// The field checks in the contract's order (`bucket_name`, `region`,
    /// `folder_path`, `encryption`, `bucket_private_confirmed`), and the
    /// target when every field parsed.
    pub(crate) fn check(self, checks: &mut Vec<Check>) -> Option<S3Target> {
        let Fields {
            layout,
            compression,
            encryption_mode,
            region_text,
            bucket_text,
            folder_text,
            confirmed,
        } = self;
        let bucket = required(checks, Required {
            name: "bucket_name",
            code: "bucket_name_invalid",
            field: "bucket",
            text: bucket_text,
            parse: BucketName::parse,
            passed: "The bucket name follows S3's naming rules.",
            remediation: "Enter the bucket's name exactly as the S3 console shows it, without s3:// or a path.",
        });
        let region = required(checks, Required {
            name: "region",
            code: "region_invalid",
            field: "region",
            text: region_text,
            parse: Region::parse,
            passed: "The region code is well-formed.",
            remediation: "Use the bucket's region code as shown in the S3 console's bucket list, such as eu-west-1.",
        });
        let folder_path = match folder_text.map(FolderPath::parse) {
            None => {
                checks.push(Check::pass(
                    "folder_path",
                    "No folder: objects go to the bucket root.",
                ));
                Some(None)
            }
            Some(Ok(f)) => {
                checks.push(Check::pass("folder_path", "The folder path is valid."));
                Some(Some(f))
            }
            Some(Err(e)) => {
                checks.push(Check::fail("folder_path", "folder_path_invalid", format!("folder_path {e}."), "Use a path like archive/prod: segments of letters, digits and !_.'()- separated by single slashes (no '*': IAM policies would read it as a wildcard)."));
                None
            }
        };
        let encryption = match encryption_mode {
            Some(("aes256", _)) => {
                checks.push(Check::pass(
                    "encryption",
                    "Objects are encrypted with SSE-S3 (AES256).",
                ));
                Some(Encryption::Aes256)
            }
            Some(("kms", Some(key))) => match KmsKeyArn::parse(key) {
                Ok(kms_key_arn) => {
                    checks.push(Check::pass(
                        "encryption",
                        "Objects are encrypted with your KMS key.",
                    ));
                    Some(Encryption::Kms { kms_key_arn })
                }
                Err(e) => {
                    checks.push(Check::fail("encryption", "kms_key_arn_invalid", format!("encryption.kms_key_arn {e}."), "Copy the key's ARN from the KMS console (Customer managed keys > your key > ARN), or an alias ARN."));
                    None
                }
            },
            Some(_) => {
                checks.push(Check::pass(
                    "encryption",
                    "Objects use the bucket's default encryption.",
                ));
                Some(Encryption::BucketDefault)
            }
            None => {
                checks.push(Check::skip(
                    "encryption",
                    "Skipped: encryption is malformed (see the request check).",
                ));
                None
            }
        };
        checks.push(if confirmed == Some(true) {
            Check::pass("bucket_private_confirmed", "You confirmed the bucket is private.")
        } else {
            Check::fail(
                "bucket_private_confirmed",
                "bucket_private_not_confirmed",
                "bucket_private_confirmed must be true.",
                "Turn on S3 Block Public Access for the bucket, then confirm that the bucket is private.",
            )
        });
        if confirmed != Some(true) {
            return None;
        }
        Some(S3Target {
            region: region?,
            bucket: bucket?,
            folder_path: folder_path?,
            layout: layout?,
            compression: compression?,
            encryption: encryption?,
            bucket_private_confirmed: true,
        })
    }
}

/// The `put_object` check: the day's probe object, written exactly as an
/// archived object is (owner, encryption, write-once). A `412` passes: S3
/// authorises before it evaluates the precondition.
pub(crate) async fn probe(
    identity: &Identity,
    destination: &Destination,
    target: &S3Target,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Check {
    let name = LiveCheck::PutObject.name();
    let probe = probe_key(target.folder_path.as_ref(), now);
    let body = encode(&probe_body(purpose, now), Compression::None);
    let put_target = PutTarget {
        bucket: &target.bucket,
        key: &probe,
        owner: destination.expected_owner(),
        encryption: &target.encryption,
        write_once: true,
    };
    match put(identity, put_target, &body).await {
        Ok(Written::Created) => {
            Check::pass(name, format!("We wrote s3://{}/{probe}.", target.bucket))
        }
        Ok(Written::AlreadyPresent) => Check::pass(
            name,
            format!(
                "S3 authorised our write of s3://{}/{probe} (today's probe was already there).",
                target.bucket
            ),
        ),
        Err(err) => {
            let err = err.for_auth(matches!(destination.auth, Auth::Role { .. }));
            put_failure(&err, destination, target)
        }
    }
}

/// A failed write (the probe or an archived object), in words for whoever
/// can fix it: the bucket policy, the role's policies, the key, the
/// organisation, or us.
pub(crate) fn put_failure(err: &WriteError, destination: &Destination, target: &S3Target) -> Check {
    let bucket = target.bucket.as_str();
    let account = &destination.account_id;
    let folder = super::policy::object_resource(
        destination.partition(),
        bucket,
        target.folder_path.as_ref().map(FolderPath::as_str),
    );
    let (message, remediation) = match (err.code, err.denied_by) {
        (FailureCode::BucketNotFound, _) => (
            format!("The bucket '{bucket}' does not exist."),
            format!("Create the bucket '{bucket}' in account {account}, or correct the bucket name."),
        ),
        (FailureCode::BucketWrongRegion, _) => (
            match &err.bucket_region {
                Some(real) => format!("The bucket is in {real}, not {}.", target.region),
                None => format!("The bucket is not in {}.", target.region),
            },
            format!(
                "Set region to {} (the bucket's region), or point the destination at a bucket in {}.",
                err.bucket_region.as_deref().unwrap_or("the bucket's region"),
                target.region
            ),
        ),
        // Real-setups B05: the role is fine; the bucket's own policy refuses
        // the write, most often because it demands an encryption header.
        (FailureCode::PutObjectDenied, Some(DeniedBy::ResourcePolicy)) => (
            format!("A bucket policy on '{bucket}' denies our write (an explicit Deny in a resource-based policy); the role's own permissions are not the problem."),
            format!(
                "Read the Deny statements of the bucket policy of '{bucket}'. Policies that demand an encryption header (a condition on s3:x-amz-server-side-encryption) need the matching encryption.mode: aes256 for AES256, or kms with the key the policy names (its key ARN, not an alias) for aws:kms; bucket_default sends no header. Otherwise exempt {} from the Deny.",
                match &destination.auth {
                    Auth::Role { role_arn, .. } => format!("the role {role_arn}"),
                    Auth::AccessKey(_) => "the access key's IAM user".to_owned(),
                }
            ),
        ),
        (FailureCode::PutObjectDenied, Some(DeniedBy::IdentityPolicy)) if matches!(destination.auth, Auth::AccessKey(_)) => (
            "S3 denied our write: the access key's IAM user may not s3:PutObject here, or a Deny in its policies refuses it.".to_owned(),
            format!("Give the IAM user a policy allowing s3:PutObject on {folder} (copy the permissions policy from GET /v1/setup) and remove any Deny that covers it."),
        ),
        (FailureCode::PutObjectDenied, Some(DeniedBy::IdentityPolicy)) => (
            "S3 denied our write: the role's policies do not allow s3:PutObject here, or a Deny in them refuses it.".to_owned(),
            format!("Give the role a permissions policy statement allowing s3:PutObject on {folder} (copy the permissions policy from GET /v1/setup) and remove any Deny that covers it. If you just revoked the role's active sessions, retry in a minute: we start a new session."),
        ),
        (FailureCode::AccessKeyInvalid, _) => (
            "S3 does not accept the access key: it was deleted or deactivated, or the secret does not match the key id.".to_owned(),
            "Create a new access key for the IAM user and send it with PUT /v1/destinations/{id}/credentials; what could not be written meanwhile is kept and written once the key works.".to_owned(),
        ),
        (FailureCode::PutObjectDenied | FailureCode::KmsDenied, Some(DeniedBy::SessionPolicy)) => (
            "Our own session policy refused the write: this is a fault on our side, not in your account.".to_owned(),
            "Nothing to change on your side; contact support with the destination id.".to_owned(),
        ),
        (FailureCode::PutObjectDenied | FailureCode::KmsDenied, Some(DeniedBy::OrganizationPolicy)) => (
            "An AWS Organizations policy (a service or resource control policy) denies the write.".to_owned(),
            "Ask the administrators of your AWS organization to allow the role to write to the bucket (and use its KMS key).".to_owned(),
        ),
        (FailureCode::PutObjectDenied, None) => {
            let who = destination.auth.principal_words();
            (
                "S3 denied our write (s3:PutObject).".to_owned(),
                format!("Check that the bucket belongs to account {account} (the account of {who}; we refuse to write to a bucket anyone else owns), that {who} may s3:PutObject on {folder} (the permissions policy from GET /v1/setup), and that no bucket policy denies it."),
            )
        }
        // Not a denial: the key itself cannot be used. Sending the admin to
        // the KMS statement again would be a loop (real-setups B02).
        (FailureCode::KmsDenied, None) if err.message.contains("KMS.NotFoundException") => (
            "S3 could not encrypt our object: the KMS key does not exist in the bucket's region (or the alias points nowhere).".to_owned(),
            format!("Check the key ARN (for encryption.mode kms) or the bucket's default encryption key: it must be an existing key in {}, the bucket's region.", target.region),
        ),
        (FailureCode::KmsDenied, None) if err.message.contains("KMS.DisabledException") || err.message.contains("KMS.KMSInvalidStateException") => (
            "S3 could not encrypt our object: the KMS key is disabled or pending deletion.".to_owned(),
            "Enable the key (or cancel its deletion) in the KMS console, or point the destination at a key in use.".to_owned(),
        ),
        (FailureCode::KmsDenied, Some(DeniedBy::ResourcePolicy)) => (
            "S3 could not encrypt our object: the KMS key's policy does not allow the role to use the key.".to_owned(),
            "Add the role to the key policy (or keep the default key policy statement that delegates to IAM in the key's own account), allowing kms:GenerateDataKey and kms:Decrypt.".to_owned(),
        ),
        (FailureCode::KmsDenied, _) => (
            "S3 could not encrypt our object with the KMS key: the role may not use the key.".to_owned(),
            "Add the KMS statement from GET /v1/setup (kms_policy_statement, with the key your bucket encrypts with: for encryption.mode bucket_default, the bucket's default key) to the role's permissions policy. If the key policy does not delegate to IAM, also allow the role in the key policy.".to_owned(),
        ),
        _ => (
            format!("Our write failed: {}.", err.message),
            "Retry in a minute; if it persists, check the bucket's policy and S3 Object Lock or ownership settings.".to_owned(),
        ),
    };
    Check::fail(
        LiveCheck::PutObject.name(),
        err.code.as_str(),
        message,
        remediation,
    )
    .transient_if(err.retryable)
}

/// The `not_public` check: an unsigned GET of today's probe object must be
/// refused.
pub(crate) async fn not_public(
    anonymous_s3: &aws_sdk_s3::config::Builder,
    destination: &Destination,
    target: &S3Target,
    now: DateTime<Utc>,
) -> Check {
    let probe = probe_key(target.folder_path.as_ref(), now);
    let anonymous = aws_sdk_s3::Client::from_conf(
        anonymous_s3
            .clone()
            .region(aws_sdk_s3::config::Region::new(
                target.region.as_str().to_owned(),
            ))
            .build(),
    );
    let answer = anonymous
        .get_object()
        .bucket(target.bucket.as_str())
        .key(&probe)
        // Never read a bucket someone else re-created under the same name.
        .expected_bucket_owner(destination.expected_owner().as_str())
        .send()
        .await;
    let name = LiveCheck::NotPublic.name();
    match answer {
        Ok(_) => Check::fail(
            name,
            "bucket_public",
            "Anyone on the internet can read objects in this bucket: an unsigned GET of our probe object succeeded.",
            "Turn on S3 Block Public Access for the bucket and remove any bucket policy or ACL that grants access to everyone (Principal \"*\"), then retry.",
        ),
        // S3 refuses any unsigned read of an SSE-KMS object with 400
        // InvalidArgument ("... require AWS Signature Version 4"), whatever
        // the bucket policy: our objects cannot leak that way, but the answer
        // says nothing about the rest of the bucket, and the message says so.
        Err(err) if err.raw_response().is_some_and(|r| r.status().as_u16() == 400)
            && err.as_service_error().and_then(|e| aws_sdk_s3::error::ProvideErrorMetadata::code(e)) == Some("InvalidArgument") => {
            Check::pass(name, "An unsigned GET of the probe object was refused because it is encrypted with KMS, as every object we write here will be: S3 never serves those unsigned. This does not show that the rest of the bucket is private; keep S3 Block Public Access on.")
        }
        Err(err) if err.raw_response().is_some_and(|r| (400..500).contains(&r.status().as_u16())) => {
            Check::pass(name, "An unsigned GET of the probe object was refused: the bucket is not public.")
        }
        Err(_) => Check::fail(
            name,
            "bucket_public",
            "We could not confirm that the bucket is private: the unsigned GET got no clear answer.",
            "Retry in a minute. Make sure S3 Block Public Access is on for the bucket.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::tests::{run, valid};
    use crate::checks::CheckStatus;

    #[test]
    fn probe_failures_address_whoever_can_fix_them() {
        let d = run(&valid()).destination.unwrap();
        let target = d.s3().unwrap();
        let failure = |code, denied_by, message: &str, retryable| {
            put_failure(
                &WriteError {
                    code,
                    message: message.to_owned(),
                    retryable,
                    bucket_region: Some("us-west-2".to_owned()),
                    denied_by,
                },
                &d,
                target,
            )
        };
        use FailureCode::*;
        // (failure, words the message must hold, words the remediation must hold)
        let cases = [
            (
                failure(
                    PutObjectDenied,
                    Some(DeniedBy::ResourcePolicy),
                    "S3 answered AccessDenied",
                    false,
                ),
                "bucket policy",
                "encryption.mode",
            ),
            (
                failure(
                    PutObjectDenied,
                    Some(DeniedBy::IdentityPolicy),
                    "S3 answered AccessDenied",
                    false,
                ),
                "role's policies",
                "s3:PutObject on arn:aws:s3:::acme-message-archive/archive/prod/*",
            ),
            (
                failure(
                    PutObjectDenied,
                    Some(DeniedBy::SessionPolicy),
                    "S3 answered AccessDenied",
                    false,
                ),
                "our side",
                "Nothing to change on your side",
            ),
            (
                failure(
                    KmsDenied,
                    Some(DeniedBy::SessionPolicy),
                    "S3 answered AccessDenied",
                    false,
                ),
                "our side",
                "Nothing to change on your side",
            ),
            (
                failure(
                    PutObjectDenied,
                    Some(DeniedBy::OrganizationPolicy),
                    "S3 answered AccessDenied",
                    false,
                ),
                "Organizations",
                "organization",
            ),
            (
                failure(PutObjectDenied, None, "S3 answered AccessDenied", false),
                "s3:PutObject",
                "belongs to account 111122223333",
            ),
            (
                failure(KmsDenied, None, "S3 answered KMS.NotFoundException", false),
                "does not exist",
                "eu-west-1",
            ),
            (
                failure(KmsDenied, None, "S3 answered KMS.DisabledException", false),
                "disabled",
                "Enable the key",
            ),
            (
                failure(
                    KmsDenied,
                    Some(DeniedBy::ResourcePolicy),
                    "S3 answered AccessDenied",
                    false,
                ),
                "key's policy",
                "key policy",
            ),
            (
                failure(
                    KmsDenied,
                    Some(DeniedBy::IdentityPolicy),
                    "S3 answered AccessDenied",
                    false,
                ),
                "may not use the key",
                "kms_policy_statement",
            ),
            (
                failure(BucketNotFound, None, "S3 answered NoSuchBucket", false),
                "does not exist",
                "account 111122223333",
            ),
            (
                failure(
                    BucketWrongRegion,
                    None,
                    "S3 answered PermanentRedirect",
                    false,
                ),
                "us-west-2",
                "Set region to us-west-2",
            ),
            (
                failure(PutObjectFailed, None, "S3 answered SlowDown", true),
                "SlowDown",
                "Retry in a minute",
            ),
        ];
        for (check, message, remediation) in &cases {
            assert!(
                check.message.contains(message),
                "{message:?} in {:?}",
                check.message
            );
            let text = check.remediation.as_deref().unwrap_or_default();
            assert!(text.contains(remediation), "{remediation:?} in {text:?}");
            assert_eq!(check.status, CheckStatus::Fail);
        }
        assert!(
            cases.last().unwrap().0.transient,
            "a retryable failure is transient"
        );
        assert!(cases.iter().rev().skip(1).all(|(c, _, _)| !c.transient));
    }
}

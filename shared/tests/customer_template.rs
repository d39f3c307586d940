//! The customer's CloudFormation template (`infra/customer-role.yaml`, JSON
//! so this test can read it) must grant exactly what the API tells customers
//! to paste: both are compared with `stored_messages::policy`'s rendering for
//! every combination of folder and KMS key.

use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::{json, Value};
use stored_messages::arn::KmsKeyArn;
use stored_messages::arn::Partition;
use stored_messages::credentials::{trust_policy, ExternalId};
use stored_messages::s3::policy::{is_exact_resource, permissions_policy, wildcard_matched_values};
use stored_messages::s3::FolderPath;

const TEMPLATE: &str = include_str!("../../infra/customer-role.yaml");

/// Just enough of CloudFormation's intrinsics to resolve this template.
fn resolve(
    value: &Value,
    params: &HashMap<&str, &str>,
    conditions: &HashMap<&str, bool>,
) -> Option<Value> {
    match value {
        Value::Object(map) if map.len() == 1 => {
            let (name, arg) = map.iter().next()?;
            match name.as_str() {
                "Ref" if arg == "AWS::NoValue" => None,
                "Ref" => Some(json!(params[arg.as_str().unwrap()])),
                "Fn::Sub" => {
                    let mut text = arg.as_str().unwrap().to_owned();
                    for (k, v) in params {
                        text = text.replace(&format!("${{{k}}}"), v);
                    }
                    Some(json!(text))
                }
                "Fn::If" => {
                    let branch = if conditions[arg[0].as_str().unwrap()] {
                        &arg[1]
                    } else {
                        &arg[2]
                    };
                    resolve(branch, params, conditions)
                }
                _ => Some(Value::Object(
                    map.iter()
                        .filter_map(|(k, v)| Some((k.clone(), resolve(v, params, conditions)?)))
                        .collect(),
                )),
            }
        }
        Value::Object(map) => Some(Value::Object(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), resolve(v, params, conditions)?)))
                .collect(),
        )),
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .filter_map(|v| resolve(v, params, conditions))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

#[test]
fn the_template_grants_what_the_setup_page_renders() {
    let template: Value = serde_json::from_str(TEMPLATE).expect("customer-role.yaml is JSON");
    let role = &template["Resources"]["ArchiveRole"]["Properties"];
    let xid = ExternalId::generate().unwrap();
    let principal = "arn:aws:iam::123456789012:role/stored-messages-functions";
    for (folder, kms) in [
        ("", ""),
        ("archive/prod", ""),
        ("", "arn:aws:kms:eu-west-1:111122223333:key/abcd-1"),
        ("archive", "arn:aws:kms:eu-west-1:111122223333:key/abcd-1"),
    ] {
        let params = HashMap::from([
            ("BucketName", "acme-archive"),
            ("FolderPath", folder),
            ("KmsKeyArn", kms),
            ("ExternalId", xid.expose()),
            ("VendorPrincipalArn", principal),
            ("RoleNamePrefix", "stored-messages"),
            ("RoleNameSuffix", "archive"),
            ("AWS::Partition", "aws"),
        ]);
        let conditions = HashMap::from([
            ("HasFolder", !folder.is_empty()),
            ("HasKmsKey", !kms.is_empty()),
        ]);
        let trust = resolve(&role["AssumeRolePolicyDocument"], &params, &conditions).unwrap();
        assert_eq!(trust, trust_policy(principal, &xid));
        let permissions =
            resolve(&role["Policies"][0]["PolicyDocument"], &params, &conditions).unwrap();
        let expected = permissions_policy(
            Partition::Aws,
            "acme-archive",
            (!folder.is_empty()).then_some(folder),
            KmsKeyArn::parse(kms).ok().as_ref(),
        );
        assert_eq!(permissions, expected, "folder {folder:?}, kms {kms:?}");
        let name = resolve(&role["RoleName"], &params, &conditions).unwrap();
        assert!(name.as_str().unwrap().starts_with("stored-messages"));
    }
}

/// The template's policy for these parameters, resolved as CloudFormation would.
fn template_permissions(folder: &str, kms: &str) -> Value {
    let template: Value = serde_json::from_str(TEMPLATE).expect("customer-role.yaml is JSON");
    let role = &template["Resources"]["ArchiveRole"]["Properties"];
    let params = HashMap::from([
        ("BucketName", "acme-archive"),
        ("FolderPath", folder),
        ("KmsKeyArn", kms),
        ("AWS::Partition", "aws"),
    ]);
    let conditions = HashMap::from([
        ("HasFolder", !folder.is_empty()),
        ("HasKmsKey", !kms.is_empty()),
    ]);
    resolve(&role["Policies"][0]["PolicyDocument"], &params, &conditions).unwrap()
}

/// A parameter's `AllowedPattern`, as a pattern proptest can generate from:
/// the non-empty alternative, without its anchors.
fn allowed(parameter: &str) -> String {
    let template: Value = serde_json::from_str(TEMPLATE).expect("customer-role.yaml is JSON");
    let pattern = template["Parameters"][parameter]["AllowedPattern"]
        .as_str()
        .unwrap();
    let pattern = pattern.strip_prefix("^$|").unwrap_or(pattern);
    pattern
        .trim_start_matches('^')
        .trim_end_matches('$')
        .to_owned()
}

proptest! {
    /// Real-setups B03 and B02 for the template: whatever a customer types
    /// that CloudFormation accepts, the role's policy names exactly one folder
    /// and one key (no wildcard but the trailing `/*`, never an alias), and
    /// every folder it accepts is one our API accepts too.
    #[test]
    fn whatever_the_template_accepts_grants_exactly_one_folder_and_key(
        folder in proptest::string::string_regex(&allowed("FolderPath")).unwrap(),
        kms in proptest::option::of(proptest::string::string_regex(&allowed("KmsKeyArn")).unwrap()),
    ) {
        let kms = kms.unwrap_or_default();
        let policy = template_permissions(&folder, &kms);
        let values = wildcard_matched_values(&policy);
        prop_assert!(!values.is_empty());
        for value in values {
            prop_assert!(is_exact_resource(&value), "{value} from folder {folder:?}, key {kms:?}");
        }
        // CloudFormation also applies MaxLength (256); dot segments stay
        // literal in IAM and S3 keys, so they widen nothing.
        let dot_segment = folder.split('/').any(|s| s == "." || s == "..");
        prop_assert!(dot_segment || folder.len() > 256 || FolderPath::parse(&folder).is_ok(), "{folder:?}");
    }
}

#[test]
fn the_template_refuses_wildcards_and_aliases() {
    let accepts = |parameter: &str, text: &str| {
        regex_lite::Regex::new(&format!("^(?:{})$", allowed(parameter)))
            .unwrap()
            .is_match(text)
    };
    for bad in ["*", "team*", "archive/*"] {
        assert!(!accepts("FolderPath", bad), "{bad}");
    }
    assert!(accepts("FolderPath", "archive/prod"));
    assert!(!accepts(
        "KmsKeyArn",
        "arn:aws:kms:eu-west-1:111122223333:alias/message-archive"
    ));
    assert!(accepts(
        "KmsKeyArn",
        "arn:aws:kms:eu-west-1:111122223333:key/1f2e3d4c-0000-4000-8000-00000000b01a"
    ));
}

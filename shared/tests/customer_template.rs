//! The customer's CloudFormation template (`infra/customer-role.yaml`, JSON
//! so this test can read it) must grant exactly what the API tells customers
//! to paste: both are compared with `stored_messages::policy`'s rendering for
//! every combination of folder and KMS key.

use std::collections::HashMap;

use serde_json::{json, Value};
use stored_messages::arn::Partition;
use stored_messages::credentials::ExternalId;
use stored_messages::policy::{permissions_policy, trust_policy};

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
            (!kms.is_empty()).then_some(kms),
        );
        assert_eq!(permissions, expected, "folder {folder:?}, kms {kms:?}");
        let name = resolve(&role["RoleName"], &params, &conditions).unwrap();
        assert!(name.as_str().unwrap().starts_with("stored-messages"));
    }
}

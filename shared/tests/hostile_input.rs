//! Property tests over everything that parses untrusted input: the archive
//! request parser, key naming, the newtypes, the API's static checks. None
//! may panic, and no key may leave its destination's folder, exceed S3's
//! 1,024-byte limit, or carry a `..`, an empty segment or an unsafe character.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use stored_messages::arn::{KmsKeyArn, RoleArn};
use stored_messages::checks::static_checks;
use stored_messages::destination::*;
use stored_messages::ids::{MessageId, OrgId};
use stored_messages::records::message::ArchiveRequest;
use stored_messages::registry::quarantine_key;
use stored_messages::s3::keys::probe_key;
use stored_messages::s3::{BucketName, FolderPath};

fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "[a-zA-Z0-9._/-]{0,200}",
        Just("..".to_owned()),
        Just("../..".to_owned()),
        Just("a/../b".to_owned()),
        Just("\u{0}".to_owned()),
        Just("％２ｆ".to_owned()),
        Just("a\u{2215}b".to_owned()),
        Just("x".repeat(5000)),
        "[\\p{Cc}\\p{Cf}]{1,8}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        hostile_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn safe_key_char(c: char) -> bool {
    // No `*`: an IAM wildcard (contract v1.1, section 3).
    c.is_ascii_alphanumeric() || "!_.'()-=/".contains(c)
}

/// One destination per folder and layout, made the way the API makes them.
fn destinations() -> Vec<Destination> {
    let mut out = Vec::new();
    for folder in [None, Some("archive/prod"), Some(&*"f".repeat(256))] {
        for layout in ["by_recipient", "by_date"] {
            let body = json!({
                "project_id": "p", "role_arn": "arn:aws:iam::111122223333:role/stored-messages-acme",
                "region": "eu-west-1", "bucket": "acme-archive", "folder_path": folder,
                "layout": layout, "bucket_private_confirmed": true,
            });
            let outcome = static_checks(
                &OrgId::parse("acme").unwrap(),
                body.as_object().unwrap(),
                "stored-messages",
            );
            out.push(outcome.destination.expect("a valid destination"));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let staging = BucketName::parse("sm-staging").unwrap();
        let _ = ArchiveRequest::parse(&bytes, Some(&staging));
    }

    #[test]
    fn keys_stay_inside_their_folder(
        // Mostly valid identifiers, so that most cases reach key naming.
        org in prop_oneof![4 => "[A-Za-z0-9_-]{1,64}", 1 => hostile_text()],
        project in prop_oneof![4 => "[A-Za-z0-9_-]{1,64}", 1 => hostile_text()],
        message_id in prop_oneof![4 => "[A-Za-z0-9._-]{1,128}", 1 => hostile_text()],
        campaign in prop::option::of(prop_oneof![4 => "[A-Za-z0-9_-]{1,64}", 1 => hostile_text()]),
        email in prop::option::of(hostile_text()),
        user_id in prop::option::of(hostile_text()),
        channel in prop_oneof![3 => Just("email"), 3 => Just("in_app"), 3 => Just("web_push"), 1 => Just("../email"), 1 => Just("")],
        sent_at in prop_oneof![3 => Just("2026-11-22T23:12:28.123Z".to_owned()), 1 => Just("9999-12-31T23:59:59Z".to_owned()), 1 => Just("0001-01-01T00:00:00-23:59".to_owned()), 1 => hostile_text()],
    ) {
        let body = json!({
            "version": 1, "org_id": org, "project_id": project, "message_id": message_id,
            "channel": channel, "sent_at": sent_at, "campaign_id": campaign,
            "recipient": { "email": email, "user_id": user_id }, "message": { "html_body": "<p>x</p>" },
        });
        let Ok(request) = ArchiveRequest::parse(body.to_string().as_bytes(), None) else { return Ok(()) };
        for d in destinations() {
            let key = d.target.message_key(&request);
            let prefix = d.s3().unwrap().folder_path.as_ref().map(|f| format!("{f}/")).unwrap_or_default();
            prop_assert!(key.starts_with(&prefix), "{key}");
            prop_assert!(key.len() <= 1024, "{} bytes", key.len());
            prop_assert!(key.chars().all(safe_key_char), "{key:?}");
            prop_assert!(key.split('/').all(|s| !s.is_empty() && s != "." && s != ".."), "{key}");
            prop_assert!(key.ends_with(".json.gz") || key.ends_with(".json"));
        }
    }

    #[test]
    fn newtypes_never_panic_and_what_they_accept_is_safe(text in hostile_text()) {
        if let Ok(folder) = FolderPath::parse(&text) {
            prop_assert!(folder.as_str().split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
            let prefix = format!("{}/", folder.as_str());
            prop_assert!(probe_key(Some(&folder), chrono::Utc::now()).starts_with(&prefix));
            prop_assert!(!folder.as_str().contains('*'), "an IAM wildcard");
        }
        if let Ok(bucket) = BucketName::parse(&text) {
            prop_assert!(bucket.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'));
        }
        if let Ok(id) = MessageId::parse(&text) {
            prop_assert!(id.as_str() != "." && id.as_str() != ".." && !id.as_str().contains('/'));
        }
        let _ = (RoleArn::parse(&text), KmsKeyArn::parse(&text), Region::parse(&text), OrgId::parse(&text), SessionName::parse(&text), DestinationId::parse(&text));
        let key = quarantine_key(chrono::Utc::now(), &text);
        prop_assert!(key.starts_with("quarantine/") && key.chars().all(safe_key_char) && !key.contains(".."));
    }

    #[test]
    fn static_checks_never_panic(body in prop::collection::btree_map(
        prop_oneof![Just("project_id".to_owned()), Just("role_arn".to_owned()), Just("bucket".to_owned()), Just("region".to_owned()),
                    Just("folder_path".to_owned()), Just("channels".to_owned()), Just("encryption".to_owned()), Just("layout".to_owned()),
                    Just("compression".to_owned()), Just("bucket_private_confirmed".to_owned()), Just("role_session_name".to_owned()), Just("auth".to_owned()), "[a-z]{1,8}"],
        json_value(), 0..12)) {
        let map: Map<String, Value> = body.into_iter().collect();
        let outcome = static_checks(&OrgId::parse("acme").unwrap(), &map, "stored-messages");
        prop_assert_eq!(outcome.checks.len(), 9);
        if let Some(d) = outcome.destination {
            match &d.auth {
                Auth::Role { role_arn, .. } => {
                    prop_assert!(role_arn.has_name_prefix("stored-messages"));
                    prop_assert_eq!(&d.account_id, role_arn.account());
                }
                // Random JSON never makes a well-shaped key pair.
                Auth::AccessKey(_) => prop_assert!(false, "an access key from random input"),
            }
        }
    }
}

//! Access-key destinations (issue 17; CONTRACT sections 3, 5 and 6)
//! through the real API handler and the archive and health parts, against
//! the emulator's IAM users, STS `GetCallerIdentity` and Secrets Manager.

use std::time::{Duration, Instant};

use stored_messages::archive::InboundRecord;
use stored_messages::destination::Status;
use stored_messages_testkit::{header, AccessKey, CONTROL_BUCKET, SECRET_PREFIX, VENDOR_ACCOUNT};

use super::lifecycle::{functions, get, message, patch, stored, test_route, Functions};
use super::*;

const ACCOUNT: &str = "444455556666";
const REGION: &str = "eu-west-1";
const CREDENTIALS: &str = include_str!("../../../../events/apigw-credentials.json");

fn body_with_key(bucket: &str, key: &AccessKey) -> Value {
    json!({
        "project_id": "12345",
        "region": REGION,
        "bucket": bucket,
        "bucket_private_confirmed": true,
        "auth": key.auth(),
    })
}

fn rotate(org: &str, path: &str, key: &AccessKey) -> LambdaEvent<ApiGatewayV2httpRequest> {
    event(
        &with_path(CREDENTIALS, "PUT", &format!("{path}/credentials")),
        Some(org),
        Some(
            json!({ "access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key }),
        ),
    )
}

fn statuses(answer: &Answer) -> Vec<(String, String)> {
    answer.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The secret name CONTRACT section 3 gives `org`'s destination `id`.
fn secret_name(org: &str, id: &str) -> String {
    format!("{SECRET_PREFIX}{org}/{id}")
}

/// Archives `ids` (one email each) for `org` and returns the report.
async fn archive(f: &Functions, org: &str, ids: &[&str]) -> stored_messages::archive::BatchReport {
    let bodies: Vec<String> = ids.iter().map(|id| message(org, id)).collect();
    let records: Vec<InboundRecord<'_>> = bodies
        .iter()
        .zip(ids)
        .map(|(body, id)| InboundRecord { id, body })
        .collect();
    f.archiver.archive_batch(&records, None).await
}

struct KeyDestination {
    customer: Customer,
    key: AccessKey,
    id: String,
    path: String,
}

/// An IAM user allowed to write, and a destination saved with its key.
async fn key_destination(w: &World, org: &str, bucket: &str) -> KeyDestination {
    let (customer, key) = w
        .emulator
        .key_customer(ACCOUNT, REGION, bucket, "archiver", true);
    let created = call(
        w,
        event(CREATE, Some(org), Some(body_with_key(bucket, &key))),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["destination"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    KeyDestination {
        customer,
        key,
        path: format!("/v1/destinations/{id}"),
        id,
    }
}

#[tokio::test]
async fn an_iam_user_key_validates_archives_and_lives_only_in_secrets_manager() {
    let w = world().await;
    let (customer, key) =
        w.emulator
            .key_customer(ACCOUNT, REGION, "keyed-archive", "archiver", true);
    w.emulator.clear_requests();
    let created = call(
        &w,
        event(
            CREATE,
            Some("acme"),
            Some(body_with_key("keyed-archive", &key)),
        ),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let d = &created.body["destination"];
    assert_eq!(
        d["auth"],
        json!({
            "mode": "access_key",
            "access_key_id": format!("AKIA************{}", &key.access_key_id[16..]),
            "credentials_updated_at": d["auth"]["credentials_updated_at"],
            "rotation_due": false,
        })
    );
    assert!(d.get("role_arn").is_none() && d.get("role_session_name").is_none());
    assert_eq!(d["account_id"], ACCOUNT, "from GetCallerIdentity");
    let id = d["id"].as_str().unwrap();

    // The checks: access_key ran, the role checks did not apply.
    let validated = call(
        &w,
        event(
            VALIDATE,
            Some("acme"),
            Some(body_with_key("keyed-archive", &key)),
        ),
    )
    .await;
    assert_eq!(validated.body["valid"], true, "{}", validated.body);
    let skipped_or_passed: Vec<(String, String)> = statuses(&validated)
        .into_iter()
        .filter(|(name, _)| {
            [
                "access_key",
                "assume_role",
                "external_id_enforced",
                "put_object",
                "not_public",
            ]
            .contains(&name.as_str())
        })
        .collect();
    assert_eq!(
        skipped_or_passed,
        [
            ("access_key", "pass"),
            ("assume_role", "skip"),
            ("external_id_enforced", "skip"),
            ("put_object", "pass"),
            ("not_public", "pass")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let requests = w.emulator.requests();
    assert!(
        requests
            .iter()
            .all(|r| r["params"]["Action"] != "AssumeRole"),
        "no role is assumed"
    );
    let probe = requests
        .iter()
        .find(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .starts_with("/keyed-archive/_stored-messages/")
        })
        .unwrap();
    assert_eq!(
        probe["access_key_id"],
        key.access_key_id.as_str(),
        "signed with the customer's key"
    );
    assert_eq!(header(probe, "x-amz-expected-bucket-owner"), Some(ACCOUNT));

    // The secret is in Secrets Manager under the contract's name, and nowhere in our control bucket.
    assert!(w.emulator.secret_names().contains(&secret_name("acme", id)));
    for object in w
        .emulator
        .bucket_objects(VENDOR_ACCOUNT, "us-east-1", CONTROL_BUCKET, "")
    {
        let text = String::from_utf8_lossy(&object.body);
        assert!(!text.contains(&key.secret_access_key), "{}", object.key);
        assert!(
            !text.contains(&key.access_key_id),
            "{}: the full key id",
            object.key
        );
    }

    // Archive: signed with the key, the secret read once for every write.
    let f = functions(&w).await;
    w.emulator.clear_requests();
    let report = archive(&f, "acme", &["k-1", "k-2", "k-3"]).await;
    assert_eq!(
        (report.messages_archived, report.retry.len()),
        (3, 0),
        "{report:?}"
    );
    let puts: Vec<Value> = w
        .emulator
        .requests_under("/keyed-archive/email/")
        .into_iter()
        .filter(|r| r["method"] == "PUT")
        .collect();
    assert_eq!(puts.len(), 3);
    assert!(puts
        .iter()
        .all(|r| r["access_key_id"] == key.access_key_id.as_str()
            && header(r, "x-amz-expected-bucket-owner") == Some(ACCOUNT)
            && header(r, "if-none-match") == Some("*")));
    let secret_reads = w
        .emulator
        .requests()
        .iter()
        .filter(|r| header(r, "x-amz-target") == Some("secretsmanager.GetSecretValue"))
        .count();
    assert_eq!(secret_reads, 1, "read once per container");
    assert_eq!(w.emulator.objects(&customer, "email/").len(), 3);

    // The health check uses the key too.
    let report = f
        .checker
        .run(Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        (
            report.checked,
            report.healthy,
            report.access_keys_rotation_due
        ),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn each_bad_key_answers_its_code_and_stores_nothing() {
    let w = world().await;
    let (customer, good) =
        w.emulator
            .key_customer(ACCOUNT, REGION, "keyed-refusals", "archiver", true);
    let (_, no_put) = w
        .emulator
        .key_customer(ACCOUNT, REGION, "keyed-refusals-2", "reader", false);
    // The right key id with another secret of the right shape.
    let wrong_secret = AccessKey {
        secret_access_key: good.secret_access_key.chars().rev().collect(),
        ..good.clone()
    };
    assert_ne!(wrong_secret.secret_access_key, good.secret_access_key);
    let deleted = w.emulator.access_key(&customer, "archiver");
    w.emulator.retire_access_key(&customer, &deleted, None);
    let inactive = w.emulator.access_key(&customer, "archiver");
    w.emulator
        .retire_access_key(&customer, &inactive, Some("Inactive"));
    let root = w.emulator.root_access_key(ACCOUNT);

    let cases = [
        (
            &wrong_secret,
            "keyed-refusals",
            ("access_key", "access_key_invalid"),
        ),
        (
            &deleted,
            "keyed-refusals",
            ("access_key", "access_key_invalid"),
        ),
        (
            &inactive,
            "keyed-refusals",
            ("access_key", "access_key_invalid"),
        ),
        (
            &root,
            "keyed-refusals",
            ("access_key", "access_key_root_not_allowed"),
        ),
        (
            &no_put,
            "keyed-refusals-2",
            ("put_object", "put_object_denied"),
        ),
    ];
    for (key, bucket, (check, code)) in cases {
        let answer = call(
            &w,
            event(CREATE, Some("acme"), Some(body_with_key(bucket, key))),
        )
        .await;
        assert_eq!(answer.status, 422, "{code}: {}", answer.body);
        assert_eq!(
            failed_code(&answer),
            vec![(check.to_owned(), code.to_owned())],
            "{}",
            answer.body
        );
        let remediation = answer.body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["status"] == "fail")
            .unwrap()["remediation"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!remediation.is_empty());
    }
    // Keys beside a role: the static auth check.
    let mut both = body_with_key("keyed-refusals", &good);
    both["role_arn"] = json!("arn:aws:iam::444455556666:role/stored-messages-x");
    let answer = call(&w, event(CREATE, Some("acme"), Some(both))).await;
    assert_eq!(answer.status, 422);
    assert_eq!(
        failed_code(&answer),
        vec![("auth".to_owned(), "auth_invalid".to_owned())]
    );
    assert!(
        w.emulator.secret_names().is_empty(),
        "nothing is stored for a key that failed"
    );
}

#[tokio::test]
async fn rotation_checks_before_the_swap_and_switches_without_losing_a_message() {
    let w = world().await;
    let s = key_destination(&w, "acme", "keyed-rotation").await;
    let f = functions(&w).await;
    let before = get(&w, "acme", &s.path).await.body["destination"].clone();
    assert_eq!(archive(&f, "acme", &["r-1"]).await.messages_archived, 1);

    // A bad new key: 422, and the old key stays in use.
    let mut bad = w.emulator.access_key(&s.customer, "archiver");
    w.emulator
        .retire_access_key(&s.customer, &bad, Some("Inactive"));
    bad.user = "archiver".into();
    let refused = call(&w, rotate("acme", &s.path, &bad)).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(
        failed_code(&refused),
        vec![("access_key".to_owned(), "access_key_invalid".to_owned())]
    );
    assert_eq!(
        get(&w, "acme", &s.path).await.body["destination"],
        before,
        "nothing changed"
    );
    assert_eq!(archive(&f, "acme", &["r-2"]).await.messages_archived, 1);

    // A good new key (IAM allows two per user: the inactive one goes
    // first), while messages are being archived by a container that holds
    // the old one: every message lands.
    w.emulator.retire_access_key(&s.customer, &bad, None);
    let fresh = w.emulator.access_key(&s.customer, "archiver");
    let ids: Vec<String> = (0..40).map(|n| format!("in-flight-{n}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (rotated, report) = tokio::join!(
        call(&w, rotate("acme", &s.path, &fresh)),
        archive(&f, "acme", &id_refs)
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(
        (report.messages_archived, report.retry.len()),
        (40, 0),
        "{report:?}"
    );
    let auth = &rotated.body["destination"]["auth"];
    assert_eq!(
        auth["access_key_id"],
        format!("AKIA************{}", &fresh.access_key_id[16..])
    );
    assert!(
        auth["credentials_updated_at"].as_str() > before["auth"]["credentials_updated_at"].as_str()
    );

    // The customer deletes the old key; a new container writes with the new one.
    w.emulator.retire_access_key(&s.customer, &s.key, None);
    let g = functions(&w).await;
    w.emulator.clear_requests();
    assert_eq!(
        archive(&g, "acme", &["after-rotation"])
            .await
            .messages_archived,
        1
    );
    let put = w
        .emulator
        .requests_under("/keyed-rotation/email/")
        .pop()
        .unwrap();
    assert_eq!(put["access_key_id"], fresh.access_key_id.as_str());
    assert_eq!(w.emulator.objects(&s.customer, "email/").len(), 43);

    // PUT .../credentials is for access-key destinations only.
    let xid = external_id(&w, "acme").await;
    let role_customer = customer(
        &w,
        Some(&xid),
        "role-bucket",
        "stored-messages-r",
        REGION,
        true,
    );
    let role = call(
        &w,
        event(CREATE, Some("acme"), Some(body_for(&role_customer))),
    )
    .await;
    let role_path = format!(
        "/v1/destinations/{}",
        role.body["destination"]["id"].as_str().unwrap()
    );
    let not_key = call(&w, rotate("acme", &role_path, &fresh)).await;
    assert_eq!(
        (not_key.status, not_key.body["error"]["code"].as_str()),
        (409, Some("not_access_key"))
    );
}

#[tokio::test]
async fn a_rejected_key_parks_fails_and_notifies_then_a_rotation_heals_it() {
    let w = world().await;
    let s = key_destination(&w, "acme", "keyed-broken").await;
    let f = functions(&w).await;
    assert_eq!(archive(&f, "acme", &["ok-1"]).await.messages_archived, 1);
    w.emulator.health_events();

    // The customer deletes the key: permanent, so parked, failing, notified.
    w.emulator.retire_access_key(&s.customer, &s.key, None);
    let report = archive(&f, "acme", &["lost-key-1", "lost-key-2"]).await;
    assert_eq!((report.parked, report.retry.len()), (2, 0), "{report:?}");
    let saved = stored(&f, "acme", &s.id).await;
    assert_eq!(saved.status, Status::Failing);
    assert_eq!(saved.health.last_error.unwrap().code, "access_key_invalid");
    let events = w.emulator.health_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["code"], "access_key_invalid");
    assert_eq!(events[0]["detail"]["to"], "failing");

    // "Test Credentials" says why.
    let tested = call(&w, test_route("acme", &s.path)).await;
    assert_eq!(
        failed_code(&tested),
        vec![("access_key".to_owned(), "access_key_invalid".to_owned())]
    );

    // A new key: checked, saved, active again; the health run writes what was parked.
    let fresh = w.emulator.access_key(&s.customer, "archiver");
    let rotated = call(&w, rotate("acme", &s.path, &fresh)).await;
    assert_eq!(
        (
            rotated.status,
            rotated.body["destination"]["status"].as_str()
        ),
        (200, Some("active"))
    );
    let g = functions(&w).await;
    let health = g
        .checker
        .run(Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(health.replayed, 2, "{health:?}");
    assert_eq!(w.emulator.objects(&s.customer, "email/").len(), 3);
}

#[tokio::test]
async fn switching_to_a_key_and_back_to_a_role_and_deleting_manage_the_secret() {
    let w = world().await;
    let xid = external_id(&w, "acme").await;
    let role_customer = customer(
        &w,
        Some(&xid),
        "switching",
        "stored-messages-switch",
        REGION,
        true,
    );
    let created = call(
        &w,
        event(CREATE, Some("acme"), Some(body_for(&role_customer))),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["destination"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/destinations/{id}");
    assert!(w.emulator.secret_names().is_empty());

    // The same account's IAM user, with the key: role fields dropped, the secret created.
    w.emulator.aws(
        "111122223333",
        REGION,
        json!([{ "service": "iam", "op": "create_user", "args": { "UserName": "switcher" } }]),
    );
    w.emulator.aws("111122223333", REGION, json!([{ "service": "iam", "op": "put_user_policy", "args": {
        "UserName": "switcher", "PolicyName": "w",
        "PolicyDocument": stored_messages::s3::policy::permissions_policy(stored_messages::arn::Partition::Aws, "switching", None, None).to_string(),
    } }]));
    let key = w.emulator.access_key(&role_customer, "switcher");
    let to_key = call(
        &w,
        patch("acme", &path, json!({ "auth": key.auth() }), None),
    )
    .await;
    assert_eq!(to_key.status, 200, "{}", to_key.body);
    assert_eq!(to_key.body["destination"]["auth"]["mode"], "access_key");
    assert!(to_key.body["destination"].get("role_arn").is_none());
    assert_eq!(w.emulator.secret_names(), [secret_name("acme", &id)]);

    // A PATCH without auth keeps the key.
    let kept = call(
        &w,
        patch("acme", &path, json!({ "channels": ["email"] }), None),
    )
    .await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert_eq!(kept.body["destination"]["auth"]["mode"], "access_key");
    assert_eq!(kept.body["destination"]["account_id"], "111122223333");

    // Back to the role: the secret goes.
    let to_role = call(
        &w,
        patch(
            "acme",
            &path,
            json!({ "auth": { "mode": "role" }, "role_arn": role_customer.role_arn() }),
            None,
        ),
    )
    .await;
    assert_eq!(to_role.status, 200, "{}", to_role.body);
    assert_eq!(
        to_role.body["destination"]["auth"],
        json!({ "mode": "role" })
    );
    assert!(w.emulator.secret_names().is_empty());

    // Keys again, then DELETE: the destination and its secret are gone.
    let again = call(
        &w,
        patch("acme", &path, json!({ "auth": key.auth() }), None),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(w.emulator.secret_names().len(), 1);
    let deleted = call(
        &w,
        event(&with_path(GET, "DELETE", &path), Some("acme"), None),
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert!(
        w.emulator.secret_names().is_empty(),
        "deleting the destination deletes its secret"
    );
}

#[tokio::test]
async fn another_org_cannot_read_rotate_test_or_delete_a_key_destination() {
    let w = world().await;
    let s = key_destination(&w, "acme", "keyed-tenant").await;
    let other_key = w.emulator.access_key(&s.customer, "archiver");
    w.emulator.clear_requests();
    let requests = [
        event(&with_path(GET, "GET", &s.path), Some("globex"), None),
        rotate("globex", &s.path, &other_key),
        test_route("globex", &s.path),
        patch("globex", &s.path, json!({ "auth": other_key.auth() }), None),
        event(&with_path(GET, "DELETE", &s.path), Some("globex"), None),
    ];
    for request in requests {
        let answer = call(&w, request).await;
        assert_eq!(
            (answer.status, answer.body["error"]["code"].as_str()),
            (404, Some("not_found"))
        );
    }
    let touched: Vec<Value> = w
        .emulator
        .requests()
        .into_iter()
        .filter(|r| header(r, "x-amz-target").is_some_and(|t| t.starts_with("secretsmanager.")))
        .collect();
    assert!(
        touched.is_empty(),
        "no Secrets Manager call for another org's request: {touched:?}"
    );
    assert_eq!(w.emulator.secret_names(), [secret_name("acme", &s.id)]);
    let mine = get(&w, "acme", &s.path).await;
    assert_eq!(
        mine.body["destination"]["auth"]["access_key_id"],
        format!("AKIA************{}", &s.key.access_key_id[16..])
    );
}

#[tokio::test]
async fn a_secret_removed_by_hand_parks_and_a_rotation_stores_it_again() {
    let w = world().await;
    let s = key_destination(&w, "acme", "keyed-lost-secret").await;
    let name = secret_name("acme", &s.id);
    w.emulator.aws(
        VENDOR_ACCOUNT,
        "us-east-1",
        json!([{ "service": "secretsmanager", "op": "delete_secret", "args": {
            "SecretId": name, "ForceDeleteWithoutRecovery": true,
        } }]),
    );
    w.emulator.health_events();

    // Retrying cannot bring it back: parked, failing, and the customer told.
    let f = functions(&w).await;
    let report = archive(&f, "acme", &["while-lost"]).await;
    assert_eq!((report.parked, report.retry.len()), (1, 0), "{report:?}");
    let saved = stored(&f, "acme", &s.id).await;
    assert_eq!(saved.status, Status::Failing);
    assert_eq!(saved.health.last_error.unwrap().code, "access_key_invalid");
    assert_eq!(w.emulator.health_events().len(), 1);

    // Sending the key again stores it again and heals the destination.
    let healed = call(&w, rotate("acme", &s.path, &s.key)).await;
    assert_eq!(
        (healed.status, healed.body["destination"]["status"].as_str()),
        (200, Some("active")),
        "{}",
        healed.body
    );
    assert_eq!(w.emulator.secret_names(), [name]);
    let g = functions(&w).await;
    let health = g
        .checker
        .run(Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(health.replayed, 1, "{health:?}");
    assert_eq!(w.emulator.objects(&s.customer, "email/").len(), 1);
}

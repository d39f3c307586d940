//! The real handler, fed API Gateway v2 events (the ones in `events/`),
//! against the local AWS emulator. Each live failure code is provoked for
//! real: a wrong trust policy, a missing ExternalId condition, a role without
//! write access, a missing bucket, a bucket elsewhere, a public bucket.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use stored_messages::api::Api;
use stored_messages::credentials::ExternalId;
use stored_messages_testkit::leak_audit::{self, Kind};
use stored_messages_testkit::{Customer, CustomerSpec, Emulator, Vendor};

use crate::handler;

struct World {
    emulator: Emulator,
    vendor: Vendor,
    api: Api,
}

async fn world() -> World {
    let emulator = Emulator::start();
    let vendor = emulator.vendor();
    let settings = emulator.settings(&vendor);
    let sdk = emulator.sdk_config(&vendor).await;
    let api = Api::new(
        &settings,
        &sdk,
        stored_messages::arn::AccountId::parse(stored_messages_testkit::VENDOR_ACCOUNT).unwrap(),
    );
    World {
        emulator,
        vendor,
        api,
    }
}

fn event(
    fixture: &str,
    org: Option<&str>,
    body: Option<Value>,
) -> LambdaEvent<ApiGatewayV2httpRequest> {
    let mut value: Value = serde_json::from_str(fixture).unwrap();
    match org {
        Some(org) => value["requestContext"]["authorizer"]["jwt"]["claims"]["org_id"] = json!(org),
        None => {
            value["requestContext"]
                .as_object_mut()
                .unwrap()
                .remove("authorizer");
        }
    }
    if let Some(body) = body {
        value["body"] = json!(body.to_string());
    }
    LambdaEvent::new(serde_json::from_value(value).unwrap(), Context::default())
}

fn with_path(fixture: &str, method: &str, path: &str) -> String {
    let mut value: Value = serde_json::from_str(fixture).unwrap();
    value["rawPath"] = json!(path);
    value["requestContext"]["http"]["method"] = json!(method);
    value["requestContext"]["http"]["path"] = json!(path);
    value.to_string()
}

struct Answer {
    status: i64,
    body: Value,
    /// The `ETag` header, when the answer carries one destination.
    etag: Option<String>,
}

/// One request through the real handler; the answer is recorded for the leak audit.
async fn call(w: &World, event: LambdaEvent<ApiGatewayV2httpRequest>) -> Answer {
    let route = format!(
        "{} {}",
        event.payload.request_context.http.method,
        event.payload.raw_path.as_deref().unwrap_or_default()
    );
    let response: ApiGatewayV2httpResponse = handler::handle(&w.api, event).await.unwrap();
    let label = format!("{route} {}", response.status_code);
    let etag = response
        .headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match response.body {
        Some(Body::Text(text)) => {
            leak_audit::record(Kind::Response, &label, &text);
            serde_json::from_str(&text).unwrap()
        }
        None => Value::Null,
        other => panic!("unexpected body {other:?}"),
    };
    Answer {
        status: response.status_code,
        body,
        etag,
    }
}

const SETUP: &str = include_str!("../../../events/apigw-setup.json");
const VALIDATE: &str = include_str!("../../../events/apigw-validate.json");
const CREATE: &str = include_str!("../../../events/apigw-create.json");
const LIST: &str = include_str!("../../../events/apigw-list.json");
const GET: &str = include_str!("../../../events/apigw-get.json");

async fn external_id(w: &World, org: &str) -> ExternalId {
    let answer = call(w, event(SETUP, Some(org), None)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    ExternalId::parse(answer.body["external_id"].as_str().unwrap()).unwrap()
}

fn customer(
    w: &World,
    xid: Option<&ExternalId>,
    bucket: &str,
    role: &str,
    region: &str,
    allow_put: bool,
) -> Customer {
    w.emulator.customer(
        &w.vendor,
        &CustomerSpec {
            account: "111122223333",
            region,
            bucket,
            role_name: role,
            external_id: xid,
            folder: None,
            allow_put,
        },
    )
}

fn body_for(customer: &Customer) -> Value {
    json!({
        "project_id": "12345",
        "role_arn": customer.role_arn(),
        "region": customer.region,
        "bucket": customer.bucket,
        "channels": ["email", "sms"],
        "encryption": { "mode": "aes256" },
        "bucket_private_confirmed": true,
    })
}

fn check<'a>(answer: &'a Answer, name: &str) -> &'a Value {
    answer.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

fn failed_code(answer: &Answer) -> Vec<(String, String)> {
    answer.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn setup_gives_one_external_id_per_org_even_under_a_race() {
    let w = world().await;
    let answers =
        futures_util::future::join_all((0..8).map(|_| call(&w, event(SETUP, Some("racer"), None))))
            .await;
    let ids: std::collections::HashSet<String> = answers
        .iter()
        .map(|a| a.body["external_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "concurrent first calls agree");
    let id = ids.into_iter().next().unwrap();
    assert!(id.len() >= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        external_id(&w, "racer").await.expose(),
        id,
        "and it never changes"
    );
    assert_ne!(external_id(&w, "other-org").await.expose(), id);

    let answer = call(&w, event(SETUP, Some("racer"), None)).await;
    assert_eq!(answer.body["principal_arn"], w.vendor.principal_arn);
    assert_eq!(answer.body["role_name_prefix"], "stored-messages");
    assert_eq!(
        answer.body["trust_policy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        id
    );
    assert_eq!(
        answer.body["permissions_policy"]["Statement"][0]["Resource"],
        "arn:aws:s3:::acme-message-archive/archive/prod/*"
    );
}

#[tokio::test]
async fn a_correct_setup_validates_then_saves_and_can_be_read_and_deleted() {
    let w = world().await;
    let xid = external_id(&w, "acme").await;
    let good = customer(
        &w,
        Some(&xid),
        "acme-good",
        "stored-messages-good",
        "eu-west-1",
        true,
    );

    let dry = call(&w, event(VALIDATE, Some("acme"), Some(body_for(&good)))).await;
    assert_eq!(dry.status, 200);
    assert_eq!(dry.body["valid"], true, "{}", dry.body);
    // Every check passes but access_key, which a role destination skips.
    assert!(dry.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| (c["name"] == "access_key") == (c["status"] == "skip") && c["status"] != "fail"));
    assert_eq!(dry.body["checks"].as_array().unwrap().len(), 14);
    assert_eq!(dry.body["destination"]["account_id"], "111122223333");
    assert_eq!(
        call(&w, event(LIST, Some("acme"), None)).await.body["destinations"],
        json!([]),
        "a dry run saves nothing"
    );
    let probes = w.emulator.objects(&good, "_stored-messages/");
    assert_eq!(probes.len(), 1);
    assert_eq!(probes[0].json()["check"], "validation");

    let created = call(&w, event(CREATE, Some("acme"), Some(body_for(&good)))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let destination = &created.body["destination"];
    let id = destination["id"].as_str().unwrap();
    assert!(id.starts_with("dst_") && id.len() == 30);
    assert_eq!(destination["status"], "active");
    assert_eq!(destination["org_id"], "acme");
    assert_eq!(destination["health"]["consecutive_failures"], 0);

    let listed = call(&w, event(LIST, Some("acme"), None)).await;
    assert_eq!(listed.body["destinations"].as_array().unwrap().len(), 1);
    let path = format!("/v1/destinations/{id}");
    let got = call(&w, event(&with_path(GET, "GET", &path), Some("acme"), None)).await;
    assert_eq!(
        (got.status, got.body["destination"]["id"].as_str()),
        (200, Some(id))
    );
    let deleted = call(
        &w,
        event(&with_path(GET, "DELETE", &path), Some("acme"), None),
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        call(&w, event(&with_path(GET, "GET", &path), Some("acme"), None))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn each_live_failure_answers_the_contract_code() {
    let w = world().await;
    let xid = external_id(&w, "acme").await;
    let wrong = ExternalId::generate().unwrap();

    let cases: Vec<(Customer, Value, (&str, &str))> = vec![
        {
            let c = customer(
                &w,
                Some(&wrong),
                "acme-wrong-xid",
                "stored-messages-wrong-xid",
                "eu-west-1",
                true,
            );
            let b = body_for(&c);
            (c, b, ("assume_role", "assume_role_denied"))
        },
        {
            let c = customer(
                &w,
                None,
                "acme-no-xid",
                "stored-messages-no-xid",
                "eu-west-1",
                true,
            );
            let b = body_for(&c);
            (c, b, ("external_id_enforced", "external_id_not_enforced"))
        },
        {
            let c = customer(
                &w,
                Some(&xid),
                "acme-no-put",
                "stored-messages-no-put",
                "eu-west-1",
                false,
            );
            let b = body_for(&c);
            (c, b, ("put_object", "put_object_denied"))
        },
        {
            let c = customer(
                &w,
                Some(&xid),
                "acme-exists",
                "stored-messages-missing-bucket",
                "eu-west-1",
                true,
            );
            let mut b = body_for(&c);
            b["bucket"] = json!("acme-does-not-exist");
            w.emulator.allow_put(
                &Customer {
                    bucket: "acme-does-not-exist".into(),
                    ..c.clone()
                },
                None,
            );
            (c, b, ("put_object", "bucket_not_found"))
        },
        {
            let c = customer(
                &w,
                Some(&xid),
                "acme-in-oregon",
                "stored-messages-region",
                "us-west-2",
                true,
            );
            let mut b = body_for(&c);
            b["region"] = json!("eu-west-1");
            (c, b, ("put_object", "bucket_wrong_region"))
        },
        {
            let c = customer(
                &w,
                Some(&xid),
                "acme-public",
                "stored-messages-public",
                "eu-west-1",
                true,
            );
            let public = json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme-public/*" }] });
            w.emulator.aws("111122223333", "eu-west-1", json!([{ "service": "s3", "op": "put_bucket_policy", "args": { "Bucket": "acme-public", "Policy": public.to_string() } }]));
            let b = body_for(&c);
            (c, b, ("not_public", "bucket_public"))
        },
    ];
    for (customer, body, (name, code)) in cases {
        for fixture in [VALIDATE, CREATE] {
            let answer = call(&w, event(fixture, Some("acme"), Some(body.clone()))).await;
            let expected_status = if fixture == VALIDATE { 200 } else { 422 };
            assert_eq!(
                answer.status, expected_status,
                "{}: {}",
                customer.role_name, answer.body
            );
            assert_eq!(
                answer.body["valid"], false,
                "{}: {}",
                customer.role_name, answer.body
            );
            assert_eq!(
                failed_code(&answer),
                vec![(name.to_owned(), code.to_owned())],
                "{}",
                customer.role_name
            );
            let failed = check(&answer, name);
            assert!(failed["remediation"]
                .as_str()
                .is_some_and(|r| !r.is_empty()));
            let later: Vec<&Value> = answer.body["checks"]
                .as_array()
                .unwrap()
                .iter()
                .skip_while(|c| c["name"] != name)
                .skip(1)
                .collect();
            assert!(
                later.iter().all(|c| c["status"] == "skip"),
                "checks after a failure are skipped"
            );
            if code == "bucket_wrong_region" {
                assert!(
                    failed["message"].as_str().unwrap().contains("us-west-2"),
                    "{}",
                    failed["message"]
                );
            }
            if code == "assume_role_denied" {
                let remediation = failed["remediation"].as_str().unwrap();
                assert!(
                    remediation.contains("trust policy")
                        && remediation.contains("External ID")
                        && remediation.contains("minute")
                );
            }
        }
    }
    assert_eq!(
        call(&w, event(LIST, Some("acme"), None)).await.body["destinations"],
        json!([]),
        "nothing failing is saved"
    );
}

#[tokio::test]
async fn a_role_without_the_prefix_is_refused_before_any_aws_call() {
    let w = world().await;
    let xid = external_id(&w, "acme").await;
    let c = customer(
        &w,
        Some(&xid),
        "acme-unprefixed",
        "archive-writer",
        "eu-west-1",
        true,
    );
    w.emulator.clear_requests();
    let answer = call(&w, event(VALIDATE, Some("acme"), Some(body_for(&c)))).await;
    assert_eq!(
        failed_code(&answer),
        vec![(
            "role_name_prefix".to_owned(),
            "role_name_prefix_mismatch".to_owned()
        )]
    );
    assert!(w
        .emulator
        .requests()
        .iter()
        .all(|r| r["params"]["Action"] != "AssumeRole"));
}

#[tokio::test]
async fn org_b_cannot_reach_org_a() {
    let w = world().await;
    let a_xid = external_id(&w, "org-a").await;
    let a = customer(
        &w,
        Some(&a_xid),
        "org-a-bucket",
        "stored-messages-org-a",
        "eu-west-1",
        true,
    );
    let created = call(&w, event(CREATE, Some("org-a"), Some(body_for(&a)))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["destination"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/destinations/{id}");

    let b_xid = external_id(&w, "org-b").await;
    assert_ne!(a_xid, b_xid, "org B never obtains org A's External ID");
    assert_eq!(
        call(&w, event(LIST, Some("org-b"), None)).await.body["destinations"],
        json!([])
    );
    assert_eq!(
        call(
            &w,
            event(&with_path(GET, "GET", &path), Some("org-b"), None)
        )
        .await
        .status,
        404
    );
    assert_eq!(
        call(
            &w,
            event(&with_path(GET, "DELETE", &path), Some("org-b"), None)
        )
        .await
        .status,
        404
    );
    // Org B pointing at org A's role: assumed with B's External ID, so AWS refuses.
    let stolen = call(&w, event(VALIDATE, Some("org-b"), Some(body_for(&a)))).await;
    assert_eq!(
        failed_code(&stolen),
        vec![("assume_role".to_owned(), "assume_role_denied".to_owned())]
    );
    // Org A still has it.
    assert_eq!(
        call(
            &w,
            event(&with_path(GET, "GET", &path), Some("org-a"), None)
        )
        .await
        .status,
        200
    );
    // The org in the body or path is ignored: only the authorizer counts.
    let mut smuggled = body_for(&a);
    smuggled["org_id"] = json!("org-a");
    let answer = call(&w, event(VALIDATE, Some("org-b"), Some(smuggled))).await;
    assert_eq!(answer.body["destination"]["org_id"], "org-b");
}

#[tokio::test]
async fn request_hygiene() {
    let w = world().await;
    let no_org = call(&w, event(LIST, None, None)).await;
    assert_eq!(
        (no_org.status, no_org.body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let bad_org = call(&w, event(LIST, Some("../etc"), None)).await;
    assert_eq!(bad_org.status, 401);

    let mut with_xid = json!({ "project_id": "p", "external_id": "mine" });
    let answer = call(&w, event(VALIDATE, Some("acme"), Some(with_xid.take()))).await;
    assert_eq!(
        (answer.status, answer.body["error"]["code"].as_str()),
        (400, Some("external_id_not_accepted"))
    );

    let huge = json!({ "project_id": "x".repeat(70 * 1024) });
    let answer = call(&w, event(VALIDATE, Some("acme"), Some(huge))).await;
    assert_eq!(
        (answer.status, answer.body["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    let mut truncated: Value = serde_json::from_str(VALIDATE).unwrap();
    truncated["body"] = json!("{\"project_id\": ");
    let answer = call(
        &w,
        LambdaEvent::new(
            serde_json::from_value(truncated).unwrap(),
            Context::default(),
        ),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );

    let answer = call(
        &w,
        event(
            &with_path(LIST, "PUT", "/v1/destinations"),
            Some("acme"),
            None,
        ),
    )
    .await;
    assert_eq!(answer.status, 405);
    let answer = call(
        &w,
        event(
            &with_path(LIST, "GET", "/v1/nothing-here"),
            Some("acme"),
            None,
        ),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let answer = call(
        &w,
        event(
            &with_path(GET, "GET", "/v1/destinations/not-an-id"),
            Some("acme"),
            None,
        ),
    )
    .await;
    assert_eq!(answer.status, 404);
}

/// An event from a fixture, changed the way an attacker or a broken client
/// would change what API Gateway hands us.
fn raw(fixture: &str, change: impl FnOnce(&mut Value)) -> LambdaEvent<ApiGatewayV2httpRequest> {
    let mut value: Value = serde_json::from_str(fixture).unwrap();
    value["requestContext"]["authorizer"]["jwt"]["claims"]["org_id"] = json!("acme");
    change(&mut value);
    LambdaEvent::new(serde_json::from_value(value).unwrap(), Context::default())
}

fn lambda_authorizer(org: Value) -> impl FnOnce(&mut Value) {
    move |v| v["requestContext"]["authorizer"] = json!({ "lambda": { "org_id": org } })
}

/// What a hostile input is, its event, the status it must get, and for a
/// 200 the static check it concerns and that check's status.
type Case = (
    String,
    LambdaEvent<ApiGatewayV2httpRequest>,
    i64,
    Option<(&'static str, &'static str)>,
);

/// Issue 7's hostile API inputs, each with the answer it must get; the
/// count and the 5xx tally are printed for the README's reliability table.
#[tokio::test]
async fn hostile_api_inputs_get_a_4xx_or_a_failed_check_never_a_5xx() {
    let w = world().await;
    let good = json!({
        "project_id": "12345",
        "role_arn": "arn:aws:iam::111122223333:role/stored-messages-archive",
        "region": "us-east-1",
        "bucket": "acme-archive",
        "channels": ["email"],
        "bucket_private_confirmed": true,
    });
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body.to_string()
    };
    let body = |text: String| move |v: &mut Value| v["body"] = json!(text);
    let deep = format!(
        "{{\"project_id\":{}{}}}",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );

    // (what, event, status, and for a 200 the static check and its status)
    let mut cases: Vec<Case> = vec![
        ("no authorizer".into(), event(LIST, None, None), 401, None),
        (
            "org claim empty".into(),
            raw(LIST, |v| {
                v["requestContext"]["authorizer"]["jwt"]["claims"]["org_id"] = json!("")
            }),
            401,
            None,
        ),
        (
            "org claim a path".into(),
            raw(LIST, |v| {
                v["requestContext"]["authorizer"]["jwt"]["claims"]["org_id"] = json!("../acme")
            }),
            401,
            None,
        ),
        (
            "org claim 10 KB".into(),
            raw(LIST, |v| {
                v["requestContext"]["authorizer"]["jwt"]["claims"]["org_id"] =
                    json!("a".repeat(10_000))
            }),
            401,
            None,
        ),
        (
            "org claim in the body only".into(),
            raw(VALIDATE, |v| {
                v["requestContext"]
                    .as_object_mut()
                    .unwrap()
                    .remove("authorizer");
                v["body"] = json!(json!({"org_id": "acme"}).to_string());
            }),
            401,
            None,
        ),
        (
            "org claim in the query only".into(),
            raw(LIST, |v| {
                v["requestContext"]
                    .as_object_mut()
                    .unwrap()
                    .remove("authorizer");
                v["rawQueryString"] = json!("org_id=acme");
                v["queryStringParameters"] = json!({"org_id": "acme"});
            }),
            401,
            None,
        ),
        (
            "external_id in a validate body".into(),
            raw(
                VALIDATE,
                body(with(
                    "external_id",
                    json!("attacker-chosen-external-id-000000"),
                )),
            ),
            400,
            None,
        ),
        (
            "external_id in a create body".into(),
            raw(CREATE, body(with("external_id", json!("x")))),
            400,
            None,
        ),
        (
            "external_id, null".into(),
            raw(CREATE, body(with("external_id", Value::Null))),
            400,
            None,
        ),
        (
            "body over 64 KiB".into(),
            raw(
                VALIDATE,
                body(with("project_id", json!("x".repeat(70_000)))),
            ),
            413,
            None,
        ),
        (
            "base64 body over 64 KiB".into(),
            raw(VALIDATE, |v| {
                v["body"] = json!("QUFB".repeat(30_000));
                v["isBase64Encoded"] = json!(true);
            }),
            413,
            None,
        ),
        (
            "base64 that is not base64".into(),
            raw(VALIDATE, |v| {
                v["body"] = json!("!!!not base64!!!");
                v["isBase64Encoded"] = json!(true);
            }),
            400,
            None,
        ),
        (
            "truncated JSON".into(),
            raw(VALIDATE, body(good.to_string()[..40].to_owned())),
            400,
            None,
        ),
        (
            "empty body".into(),
            raw(CREATE, body(String::new())),
            400,
            None,
        ),
        (
            "20,000 levels of nesting".into(),
            raw(VALIDATE, body(deep)),
            400,
            None,
        ),
        (
            "duplicate role_arn".into(),
            raw(
                CREATE,
                body(good.to_string().replacen(
                    '{',
                    "{\"role_arn\":\"arn:aws:iam::999999999999:role/stored-messages-evil\",",
                    1,
                )),
            ),
            400,
            None,
        ),
        (
            "an array".into(),
            raw(VALIDATE, body("[]".into())),
            400,
            None,
        ),
        (
            "a string".into(),
            raw(VALIDATE, body("\"x\"".into())),
            400,
            None,
        ),
        ("null".into(), raw(VALIDATE, body("null".into())), 400, None),
        (
            "NUL bytes in strings".into(),
            raw(VALIDATE, body(with("project_id", json!("12\u{0}345")))),
            200,
            Some(("request", "fail")),
        ),
        (
            "prefix only in the role path".into(),
            raw(
                VALIDATE,
                body(with(
                    "role_arn",
                    json!("arn:aws:iam::111122223333:role/stored-messages/evil"),
                )),
            ),
            200,
            Some(("role_name_prefix", "fail")),
        ),
        (
            "prefix after the name".into(),
            raw(
                VALIDATE,
                body(with(
                    "role_arn",
                    json!("arn:aws:iam::111122223333:role/evil-stored-messages"),
                )),
            ),
            200,
            Some(("role_name_prefix", "fail")),
        ),
        (
            "not an IAM role ARN".into(),
            raw(
                VALIDATE,
                body(with(
                    "role_arn",
                    json!("arn:aws:iam::111122223333:user/stored-messages-x"),
                )),
            ),
            200,
            Some(("role_arn", "fail")),
        ),
        (
            "account of 11 digits".into(),
            raw(
                VALIDATE,
                body(with(
                    "role_arn",
                    json!("arn:aws:iam::11112222333:role/stored-messages-x"),
                )),
            ),
            200,
            Some(("role_arn", "fail")),
        ),
        (
            "another org's destination id".into(),
            event(
                &with_path(
                    GET,
                    "GET",
                    "/v1/destinations/dst_aaaaaaaaaaaaaaaaaaaaaaaaaa",
                ),
                Some("acme"),
                None,
            ),
            404,
            None,
        ),
        (
            "a path-traversal id".into(),
            event(
                &with_path(GET, "GET", "/v1/destinations/..%2F..%2Forgs"),
                Some("acme"),
                None,
            ),
            404,
            None,
        ),
        (
            "DELETE of the collection".into(),
            event(
                &with_path(LIST, "DELETE", "/v1/destinations"),
                Some("acme"),
                None,
            ),
            405,
            None,
        ),
    ];
    for org in [
        json!(42),
        json!(["acme"]),
        json!({"id": "acme"}),
        Value::Null,
        json!(true),
    ] {
        cases.push((
            format!("lambda authorizer org_id = {org}"),
            raw(LIST, lambda_authorizer(org)),
            401,
            None,
        ));
    }
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ] {
        cases.push((
            format!("Content-Type {content_type}"),
            raw(VALIDATE, |v| {
                v["body"] = json!(good.to_string());
                v["headers"]["content-type"] = json!(content_type);
            }),
            400,
            None,
        ));
    }
    // Bucket names and regions at every edge of the rules: accepted ones pass
    // the static check (the live checks then fail on the made-up role).
    let buckets = [
        ("ab", false),
        ("abc", true),
        (&"a".repeat(63)[..], true),
        (&"a".repeat(64)[..], false),
        ("-abc", false),
        ("abc-", false),
        ("a..b", false),
        ("a.-b", false),
        ("192.168.1.1", false),
        ("xn--abc", false),
        ("sthree-abc", false),
        ("abc-s3alias", false),
        ("abc--ol-s3", false),
        ("ABC", false),
        ("a_b", false),
        ("a.b-c1", true),
    ];
    for (bucket, ok) in buckets {
        cases.push((
            format!("bucket {bucket:?}"),
            raw(VALIDATE, body(with("bucket", json!(bucket)))),
            200,
            Some(("bucket_name", if ok { "pass" } else { "fail" })),
        ));
    }
    let regions = [
        ("us-east-1", true),
        ("eu-central-2", true),
        ("US-EAST-1", false),
        ("", false),
        ("us-east-1 ", false),
        ("us_east_1", false),
        (&"u".repeat(64)[..], false),
        ("us-east-1/..", false),
    ];
    for (region, ok) in regions {
        cases.push((
            format!("region {region:?}"),
            raw(VALIDATE, body(with("region", json!(region)))),
            200,
            Some(("region", if ok { "pass" } else { "fail" })),
        ));
    }

    let tried = cases.len();
    let mut server_errors = 0;
    for (what, event, status, expected_check) in cases {
        let answer = call(&w, event).await;
        server_errors += usize::from(answer.status >= 500);
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        match expected_check {
            Some((name, check_status)) => {
                assert_eq!(answer.body["valid"], false, "{what}");
                assert_eq!(
                    check(&answer, name)["status"],
                    check_status,
                    "{what}: {}",
                    answer.body
                );
            }
            None => assert!(
                answer.body["error"]["code"].is_string(),
                "{what}: {}",
                answer.body
            ),
        }
    }
    println!("hostile API inputs: {tried} tried, {server_errors} answered 5xx");
    assert_eq!(server_errors, 0);
}

mod access_keys;
mod lifecycle;
mod real_setups;

//! The API fuzz run of `make test`: schemathesis generates requests from
//! `infra/openapi.yaml` and sends them through a local API Gateway stand-in
//! (`tools/api_gateway.py`) to validate-destination under
//! `cargo lambda watch`, against the emulator. Fails on any 5xx answer or any
//! answer the OpenAPI document does not describe.

use std::process::Command;

use serde_json::{json, Value};
use stored_messages::credentials::ExternalId;
use stored_messages_testkit::{api_event, repo_root, CustomerSpec, Emulator, Gateway, LambdaWatch};

const ORG: &str = "fuzz-org";

fn api_body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap_or("null")).expect("a JSON body")
}

fn main() {
    let root = repo_root();
    let work = root.join("target/fuzz");
    let emulator = Emulator::start();
    let vendor = emulator.vendor();
    let watch = LambdaWatch::start(&emulator, &vendor, &work);
    // The first invoke builds the function; do it before the clock starts.
    watch.invoke("validate-destination", &root.join("events/apigw-list.json"));

    // One real, healthy destination of the fuzzing org, so that the routes
    // on `/v1/destinations/{id}` (GET, PATCH, the test, DELETE) reach a
    // stored destination and live checks, not only 404s.
    let setup = api_body(&watch.invoke(
        "validate-destination",
        &api_event(&work, "apigw-setup.json", ORG, "GET", "/v1/setup", None),
    ));
    let external_id =
        ExternalId::parse(setup["external_id"].as_str().expect("an External ID")).expect("valid");
    let customer = emulator.customer(
        &vendor,
        &CustomerSpec {
            account: "111122223333",
            region: "eu-west-1",
            bucket: "fuzz-archive",
            role_name: "stored-messages-fuzz",
            external_id: Some(&external_id),
            folder: None,
            allow_put: true,
        },
    );
    let create = |body: Value| {
        let created = watch.invoke(
            "validate-destination",
            &api_event(
                &work,
                "apigw-create.json",
                ORG,
                "POST",
                "/v1/destinations",
                Some(body),
            ),
        );
        api_body(&created)["destination"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a fuzzing destination was not created: {created}"))
            .to_owned()
    };
    let with_role = |project: &str| {
        json!({
            "project_id": project, "role_arn": customer.role_arn(), "region": customer.region,
            "bucket": customer.bucket, "encryption": { "mode": "aes256" }, "bucket_private_confirmed": true,
        })
    };
    // Two: DELETE gets its own, so that it cannot take away the one the
    // other operations work on.
    let (kept, deleted) = (create(with_role("fuzz")), create(with_role("fuzz-deleted")));
    // An access-key destination, for PUT .../credentials to reach its
    // checks (a role destination answers 409 there).
    let (keyed_customer, key) =
        emulator.key_customer("444455556666", "eu-west-1", "fuzz-keyed", "fuzzer", true);
    let keyed = create(json!({
        "project_id": "fuzz-keyed", "region": keyed_customer.region, "bucket": keyed_customer.bucket,
        "bucket_private_confirmed": true, "auth": key.auth(),
    }));
    // A backfill job of the kept destination, for the routes on
    // `/v1/backfills/{id}` to reach a stored job, not only 404s.
    let started = watch.invoke(
        "validate-destination",
        &api_event(
            &work,
            "apigw-backfill.json",
            ORG,
            "POST",
            &format!("/v1/destinations/{kept}/backfills"),
            Some(json!({ "manifest_prefix": format!("{ORG}/exports/") })),
        ),
    );
    let backfill = api_body(&started)["backfill"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a fuzzing backfill was not started: {started}"))
        .to_owned();
    let config = work.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[parameters]\n\"path.id\" = \"{kept}\"\n\n\
             [[operations]]\ninclude-operation-id = \"deleteDestination\"\n\
             parameters = {{ \"path.id\" = \"{deleted}\" }}\n\n\
             [[operations]]\ninclude-operation-id = \"rotateCredentials\"\n\
             parameters = {{ \"path.id\" = \"{keyed}\" }}\n\n\
             [[operations]]\ninclude-operation-id = \"getBackfill\"\n\
             parameters = {{ \"path.id\" = \"{backfill}\" }}\n\n\
             [[operations]]\ninclude-operation-id = \"cancelBackfill\"\n\
             parameters = {{ \"path.id\" = \"{backfill}\" }}\n"
        ),
    )
    .expect("write the schemathesis config");

    let gateway = Gateway::start(&watch, ORG, &[] as &[&str]);
    let port = gateway.port;

    // `--max-examples` bounds the fuzzing and stateful phases only; the
    // coverage phase (about half the requests and time) does not depend on
    // it. At 15 every one of the 13 operations gets its successful answers
    // and 19 of the document's API links are followed: 969 requests,
    // against 1,173 at 25 (24 links) for about 20 s more of `make test`.
    let status = Command::new(root.join(".venv/bin/st"))
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(root.join("infra/openapi.yaml"))
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "15", "--seed", "20261123", "--workers", "1", "--request-timeout", "60"])
        .args(["--report", "junit", "--report-dir"])
        .arg(work.join("report"))
        // schemathesis keeps a cache in its working directory: keep it out of the tree.
        .current_dir(&work)
        .status()
        .expect("run schemathesis");
    drop(gateway);
    drop(watch);
    std::process::exit(status.code().unwrap_or(1));
}

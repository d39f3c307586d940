//! The API fuzz run of `make test`: schemathesis generates requests from
//! `infra/openapi.yaml` and sends them through a local API Gateway stand-in
//! (`tools/api_gateway.py`) to validate-destination under
//! `cargo lambda watch`, against the emulator. Fails on any 5xx answer or any
//! answer the OpenAPI document does not describe.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use stored_messages_testkit::{repo_root, Emulator, LambdaWatch};

fn main() {
    let root = repo_root();
    let work = root.join("target/fuzz");
    let emulator = Emulator::start();
    let vendor = emulator.vendor();
    let watch = LambdaWatch::start(&emulator, &vendor, &work);
    // The first invoke builds the function; do it before the clock starts.
    watch.invoke("validate-destination", &root.join("events/apigw-list.json"));

    let mut gateway = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tools/api_gateway.py"))
        .args([
            "--lambda-endpoint",
            &watch.endpoint(),
            "--function",
            "validate-destination",
            "--org",
            "fuzz-org",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the API Gateway stand-in");
    let mut line = String::new();
    BufReader::new(gateway.stdout.take().expect("gateway stdout"))
        .read_line(&mut line)
        .expect("the gateway's READY line");
    let port: u16 = line
        .strip_prefix("READY ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("the gateway did not start: {line:?}"));

    let status = Command::new(root.join(".venv/bin/st"))
        .arg("run")
        .arg(root.join("infra/openapi.yaml"))
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "40", "--seed", "20261123", "--workers", "1", "--request-timeout", "60"])
        .args(["--report", "junit", "--report-dir"])
        .arg(work.join("report"))
        // schemathesis keeps a cache in its working directory: keep it out of the tree.
        .current_dir(&work)
        .status()
        .expect("run schemathesis");
    let _ = gateway.kill();
    let _ = gateway.wait();
    drop(watch);
    std::process::exit(status.code().unwrap_or(1));
}

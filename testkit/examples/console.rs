//! `make console`: the reference "Connect a destination" page on a laptop,
//! and the stack the console's browser tests run against.
//!
//! Starts the local AWS emulator, validate-destination under
//! `cargo lambda watch`, and the API Gateway stand-in as the page's host
//! (`tools/api_gateway.py --console console/dist`: the page, the API under
//! `/v1/` behind a bearer token, and `infra/customer-role.yaml`), all on
//! 127.0.0.1. A customer account (111122223333) is ready to be connected:
//! its bucket, and a role trusting us with the org's External ID and
//! holding the setup page's write policy, as the admin would make them from
//! the page.
//!
//! Prints `READY {json}` (the page's address, the emulator's endpoint, the
//! org and the ready customer) for the browser tests, then the same for a
//! person, and runs until its standard input closes (the tests), Ctrl-C or
//! SIGTERM; then it stops what it started, `cargo lambda watch` (in its own
//! process group, which a terminal's Ctrl-C does not reach) included.

use std::io::Read;
use std::sync::mpsc;

use serde_json::{json, Value};
use stored_messages::credentials::ExternalId;
use stored_messages_testkit::{api_event, repo_root, CustomerSpec, Emulator, Gateway, LambdaWatch};

/// The org the stand-in's authorizer puts in every request's claims.
const ORG: &str = "acme";

/// The write end of the pipe [`on_stop_signal`] wakes [`until_stopped`] through.
static STOP_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_stop_signal(_: libc::c_int) {
    let fd = STOP_PIPE.load(std::sync::atomic::Ordering::Relaxed);
    // SAFETY: write(2) is async-signal-safe; one byte from a static.
    unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
}

/// Returns when standard input closes, or at SIGINT or SIGTERM, so that
/// the `Drop`s that stop the emulator and `cargo lambda watch` run: the
/// default action would end this process and leave watch, in its own
/// process group, running. The handler only writes to a pipe (the
/// self-pipe pattern); exec resets it in every child.
fn until_stopped() {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills the two descriptors; the handler is a plain
    // `extern "C"` function that only calls write(2).
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0, "a pipe for stop signals");
        STOP_PIPE.store(fds[1], std::sync::atomic::Ordering::Relaxed);
        let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    let (stop, stopped) = mpsc::channel();
    let on_eof = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = on_eof.send(());
    });
    std::thread::spawn(move || {
        let mut byte = 0u8;
        // SAFETY: a one-byte read into a local from the pipe made above.
        unsafe { libc::read(fds[0], (&mut byte as *mut u8).cast(), 1) };
        let _ = stop.send(());
    });
    let _ = stopped.recv();
}

fn main() {
    let root = repo_root();
    let work = root.join("target/console");
    let page = root.join("console/dist");
    assert!(
        page.join("index.html").exists(),
        "{} is missing: run `make console` (it builds the page first)",
        page.display()
    );
    let emulator = Emulator::start();
    let vendor = emulator.vendor();
    let watch = LambdaWatch::start(&emulator, &vendor, &work);
    // The first invoke builds the function; the page's first call then
    // answers at once.
    let setup = watch.invoke(
        "validate-destination",
        &api_event(&work, "apigw-setup.json", ORG, "GET", "/v1/setup", None),
    );
    let setup: Value = serde_json::from_str(setup["body"].as_str().unwrap_or("null"))
        .unwrap_or_else(|_| panic!("GET /v1/setup did not answer JSON: {setup}"));
    let external_id = ExternalId::parse(setup["external_id"].as_str().unwrap_or_default())
        .expect("the org's External ID");
    let customer = emulator.customer(
        &vendor,
        &CustomerSpec {
            account: "111122223333",
            region: "eu-west-1",
            bucket: "acme-message-archive",
            role_name: "stored-messages-acme",
            external_id: Some(&external_id),
            folder: None,
            allow_put: true,
        },
    );

    let mut extra: Vec<std::ffi::OsString> = vec![
        "--console".into(),
        page.into(),
        "--customer-template".into(),
        root.join("infra/customer-role.yaml").into(),
    ];
    if let Ok(port) = std::env::var("CONSOLE_PORT") {
        extra.extend(["--port".into(), port.into()]);
    }
    if let Ok(url) = std::env::var("CUSTOMER_TEMPLATE_URL") {
        extra.extend(["--template-url".into(), url.into()]);
    }
    let gateway = Gateway::start(&watch, ORG, &extra);
    let port = gateway.port;
    let url = format!("http://127.0.0.1:{port}/");

    let ready = json!({
        "url": url,
        "emulator": emulator.endpoint(),
        "org_id": ORG,
        "customer": {
            "account": customer.account, "region": customer.region,
            "bucket": customer.bucket, "role_arn": customer.role_arn(),
        },
    });
    println!("READY {ready}");
    println!("==> the console of org {ORG}: {url}");
    println!(
        "    a customer account ready to be connected: role {}, bucket {} in {}",
        customer.role_arn(),
        customer.bucket,
        customer.region
    );
    println!("    on Connect: any project id, that role ARN, bucket {}, region {}, the confirmation, then Test connection", customer.bucket, customer.region);
    println!("    (on Setup, bucket {} and role name suffix `acme` show the policies that role was made from)", customer.bucket);
    println!("    emulator {}; function log target/console/watch.log; Ctrl-C (or end of input) stops everything", emulator.endpoint());

    until_stopped();
    println!("==> stopping");
    drop(gateway);
}

//! The leak audit of a test run (a dev-dependency only, never in a Lambda
//! build): proves that no log line, metric line or API answer of the whole
//! emulator suite carries a recipient, a message body, an External ID or a
//! credential.
//!
//! One test in isolation can only look for the secrets it planted; a leak
//! hides in the paths nobody thought to check (an SDK trace, a retry
//! warning, a 4xx body). So the suite records everything while it runs,
//! and a separate pass checks all of it against every secret any test used:
//!
//! - [`install`] (called by `Emulator::start`) routes every `tracing` event
//!   of the process, the SDK's TRACE lines included, into one JSON-lines
//!   file under `$STORED_MESSAGES_LEAK_AUDIT`; without that variable it does
//!   nothing, so a plain `cargo test` leaves no files behind.
//! - Metric lines reach it as the TRACE events [`stored_messages::metrics::emit`]
//!   sends beside each EMF line (target [`stored_messages::metrics::TRACE_TARGET`]);
//!   API answers and archive inputs are recorded next to them with [`record`].
//! - The emulator (`tools/emulator/server.py`) appends the secrets only it
//!   sees (every session credential it issues, every access key secret of
//!   IAM or Secrets Manager, every External ID written to the control
//!   bucket) and every object written to our own buckets ([`Kind::Stored`]),
//!   so a secret saved in the registry is found too.
//! - [`scan`] (run by `make test` through `examples/leak_audit.rs`) reads
//!   it all back, derives the PII from the recorded inputs and reports each
//!   place a secret shows up, in any casing, JSON-, `Debug`- or
//!   percent-encoded.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use aho_corasick::AhoCorasick;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where the audit files go; unset means no audit.
pub const DIR_VARIABLE: &str = "STORED_MESSAGES_LEAK_AUDIT";

/// What one recorded line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A `tracing` event as our functions would print it (JSON).
    Log,
    /// A CloudWatch EMF line.
    Metric,
    /// An API answer; `label` is `"{method} {path} {status}"`.
    Response,
    /// A body fed to the functions: an archive request or a staged message.
    Input,
    /// A secret the emulator or the harness handed out; `label` is its class.
    Secret,
    /// An object written to one of our own buckets (the control bucket's
    /// registry records, parked and quarantined objects; the staging
    /// bucket), as the emulator stored it; `label` is `bucket/key`. Only
    /// credentials are looked for here: External IDs are stored by design
    /// (`orgs/{org}/external-id.json`), and parked, quarantined and staged
    /// objects hold message content by design.
    Stored,
}

/// One line of an audit file; borrowed when written, owned when read back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry<'a> {
    pub kind: Kind,
    #[serde(default)]
    pub label: Cow<'a, str>,
    pub text: Cow<'a, str>,
}

static SINK: OnceLock<Option<Mutex<File>>> = OnceLock::new();

/// Starts the process's audit file and routes every `tracing` event into
/// it, if `$STORED_MESSAGES_LEAK_AUDIT` names a directory. Idempotent.
///
/// Panics if the file cannot be made or another global subscriber is set:
/// an audit that silently records nothing would pass vacuously.
pub fn install() {
    SINK.get_or_init(|| {
        let dir = std::env::var_os(DIR_VARIABLE).filter(|d| !d.is_empty())?;
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create the leak audit directory");
        let program = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "unknown".to_owned());
        let path = dir.join(format!("{program}.{}.jsonl", std::process::id()));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open the leak audit file");
        tracing::subscriber::set_global_default(subscriber())
            .expect("the leak audit owns the global tracing subscriber");
        Some(Mutex::new(file))
    });
}

/// Every event at every level, ours and the SDK's, as JSON lines. Each span
/// is printed with its fields when it opens, and each line names only its
/// innermost span rather than the whole list; the orchestrator's
/// per-request dump of its own plumbing (`runtime_components`: interceptors,
/// resolvers, no request data) is left out. The full span lists and that
/// dump were 60% of the bytes and doubled the suite's time.
fn subscriber() -> impl tracing::Subscriber + Send + Sync {
    use tracing_subscriber::fmt::format::FmtSpan;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;

    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_span_list(false)
        .with_span_events(FmtSpan::NEW)
        .with_writer(|| Tap)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            !meta
                .fields()
                .iter()
                .any(|f| f.name() == "runtime_components")
        }));
    tracing_subscriber::registry().with(layer)
}

/// Appends one entry to the audit file, if the audit is on.
pub fn record(kind: Kind, label: &str, text: &str) {
    let Some(Some(sink)) = SINK.get() else {
        return;
    };
    let entry = Entry {
        kind,
        label: Cow::Borrowed(label),
        text: Cow::Borrowed(text),
    };
    let Ok(mut line) = serde_json::to_vec(&entry) else {
        return;
    };
    line.push(b'\n');
    // One write per entry on an append-only file: nothing buffered is lost
    // when the test process exits without running destructors.
    let mut file = sink.lock().unwrap_or_else(|e| e.into_inner());
    file.write_all(&line).expect("write to the leak audit file");
}

/// The global subscriber's writer: each formatted event becomes a `Log` entry.
struct Tap;

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for line in String::from_utf8_lossy(buf).lines() {
            if line.is_empty() {
                continue;
            }
            // The EMF line beside each metric event is what CloudWatch gets.
            let metric = serde_json::from_str::<Value>(line).ok().and_then(|event| {
                (event["target"] == stored_messages::metrics::TRACE_TARGET)
                    .then(|| event["fields"]["emf"].as_str().map(str::to_owned))
                    .flatten()
            });
            match metric {
                Some(emf) => record(Kind::Metric, "", &emf),
                None => record(Kind::Log, "", line),
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A test's own log capture (for asserting on what it logged) that also
/// feeds the audit: a scoped subscriber hides the global one.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// A capture of every log line (every level, JSON, as in Lambda) written
    /// on this thread while the guard lives; it hides the leak audit's
    /// global subscriber for that scope, and still feeds the audit.
    pub fn scoped() -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Self::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    /// The JSON lines captured so far whose `event` field is `event`.
    pub fn events(&self, event: &str) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["fields"]["event"] == event)
            .collect()
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Tap.write(buf)?;
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A secret's class, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// A recipient field or message content.
    Pii,
    ExternalId,
    Credential,
    /// A customer's full access key id: only its masked form may leave
    /// Secrets Manager (CONTRACT section 3).
    AccessKeyId,
}

impl Class {
    fn from_label(label: &str) -> Option<Self> {
        match label {
            "external_id" => Some(Self::ExternalId),
            "credential" => Some(Self::Credential),
            "access_key_id" => Some(Self::AccessKeyId),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Pii => "recipient or message content",
            Self::ExternalId => "External ID",
            Self::Credential => "credential",
            Self::AccessKeyId => "full access key id",
        }
    }
}

/// Shorter PII values (a subject of "Hi", a user id of "u-1") would match
/// ordinary words; the tests' recipients and bodies are all longer.
const MIN_PII_CHARS: usize = 6;

/// Where a secret showed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub program: String,
    pub kind: Kind,
    pub label: String,
    pub class: Class,
    pub secret: String,
    pub line: String,
}

/// What [`scan`] read and found.
#[derive(Debug, Default)]
pub struct Report {
    /// Lines scanned per (program, kind), kinds `Log`, `Metric`, `Response`.
    pub scanned: BTreeMap<(String, Kind), usize>,
    /// API answers with a 4xx or 5xx status, per program.
    pub error_bodies: BTreeMap<String, usize>,
    /// Distinct secrets looked for, per class.
    pub secrets: BTreeMap<Class, usize>,
    pub findings: Vec<Finding>,
}

/// Reads every audit file in `dir` and reports each scanned line that
/// carries a secret. `GET /v1/setup` answers with status 200 are the one
/// place an External ID belongs; they are still scanned for the rest.
///
/// Two passes over the files, line by line (the recordings are hundreds of
/// megabytes): the first collects every secret, the second scans.
pub fn scan(dir: &Path) -> std::io::Result<Report> {
    let mut files = vec![];
    for item in std::fs::read_dir(dir)? {
        let path = item?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            files.push(path);
        }
    }
    let mut secrets = Secrets::default();
    for path in &files {
        each_entry(path, |entry| secrets.learn(entry))?;
    }
    let mut audit = secrets.audit();
    for path in &files {
        let program = program_of(path);
        each_entry(path, |entry| audit.check(&program, entry))?;
    }
    Ok(audit.report)
}

fn each_entry(path: &Path, mut f: impl FnMut(&Entry<'_>)) -> std::io::Result<()> {
    use std::io::BufRead;
    let reader = std::io::BufReader::new(File::open(path)?);
    for line in reader.lines() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let entry = serde_json::from_str::<Entry>(&line).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        f(&entry);
    }
    Ok(())
}

/// `archive_message-0123abcd.4242.jsonl` -> `archive_message`.
fn program_of(path: &Path) -> String {
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = stem.split('.').next().unwrap_or_default();
    match name.rsplit_once('-') {
        Some((program, hash))
            if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            program.to_owned()
        }
        _ => name.to_owned(),
    }
}

/// Every secret the run handed out or was fed, by class.
#[derive(Default)]
struct Secrets(BTreeMap<String, Class>);

impl Secrets {
    fn learn(&mut self, entry: &Entry<'_>) {
        match entry.kind {
            Kind::Secret => {
                if let Some(class) = Class::from_label(&entry.label) {
                    self.0.insert(entry.text.clone().into_owned(), class);
                }
            }
            Kind::Input => {
                for value in pii_values(&entry.text) {
                    self.0.entry(value).or_insert(Class::Pii);
                }
            }
            Kind::Log | Kind::Metric | Kind::Response | Kind::Stored => {}
        }
    }

    fn audit(self) -> Audit {
        let mut report = Report::default();
        let mut needles: Vec<String> = vec![];
        let mut owners: Vec<(String, Class)> = vec![];
        for (secret, class) in self.0 {
            *report.secrets.entry(class).or_default() += 1;
            for form in ends(&secret).into_iter().flat_map(encodings) {
                needles.push(form);
                owners.push((secret.clone(), class));
            }
        }
        let matcher = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&needles)
            .expect("an automaton over the secrets");
        Audit {
            matcher,
            owners,
            report,
        }
    }
}

/// The second pass: every scanned line against every secret.
struct Audit {
    matcher: AhoCorasick,
    owners: Vec<(String, Class)>,
    report: Report,
}

impl Audit {
    fn check(&mut self, program: &str, entry: &Entry<'_>) {
        if matches!(entry.kind, Kind::Secret | Kind::Input) {
            return;
        }
        let report = &mut self.report;
        *report
            .scanned
            .entry((program.to_owned(), entry.kind))
            .or_default() += 1;
        if entry.kind == Kind::Response && is_error_status(&entry.label) {
            *report.error_bodies.entry(program.to_owned()).or_default() += 1;
        }
        let setup_answer =
            entry.kind == Kind::Response && entry.label.starts_with("GET /v1/setup 200");
        let mut seen = HashSet::new();
        for hit in self.matcher.find_overlapping_iter(entry.text.as_ref()) {
            let (secret, class) = &self.owners[hit.pattern().as_usize()];
            let stored_by_design = entry.kind == Kind::Stored
                && !matches!(class, Class::Credential | Class::AccessKeyId);
            // The SDK's signing traces name the key id; our functions never
            // print them (stored_messages::logging caps the SDK at INFO).
            let unprinted_sdk_trace = *class == Class::AccessKeyId
                && entry.kind == Kind::Log
                && !printed_in_production(&entry.text);
            if (setup_answer && *class == Class::ExternalId)
                || stored_by_design
                || unprinted_sdk_trace
                || !seen.insert(secret)
            {
                continue;
            }
            report.findings.push(Finding {
                program: program.to_owned(),
                kind: entry.kind,
                label: entry.label.clone().into_owned(),
                class: *class,
                secret: secret.clone(),
                line: entry.text.clone().into_owned(),
            });
        }
    }
}

/// Whether a recorded log line (JSON, with `target` and `level`) would be
/// printed by the functions' subscriber at its most verbose.
fn printed_in_production(line: &str) -> bool {
    let Ok(fields) = serde_json::from_str::<Value>(line) else {
        return true;
    };
    let target = fields["target"].as_str().unwrap_or_default();
    let level = fields["level"]
        .as_str()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::ERROR);
    stored_messages::logging::allowed(target, &level, tracing::level_filters::LevelFilter::TRACE)
}

fn is_error_status(label: &str) -> bool {
    label
        .rsplit(' ')
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .is_some_and(|s| s >= 400)
}

/// The PII an input carries: every string under `recipient` and `message`
/// of an archive request, and under `data` of an engagement event
/// (CONTRACT 2b: "Event contents (recipient, data) are PII"); a staged
/// message object is all content. A body that is not JSON counts every
/// quoted value in it.
fn pii_values(text: &str) -> Vec<String> {
    let mut values = vec![];
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(fields)) if fields.contains_key("version") => {
            for name in ["recipient", "message", "data"] {
                if let Some(value) = fields.get(name) {
                    strings_in(value, &mut values);
                }
            }
        }
        Ok(value) => strings_in(&value, &mut values),
        Err(_) => quoted_values(text, &mut values),
    }
    // What our code would log is the trimmed value (an email is trimmed
    // and lowercased before hashing): look for both.
    let trimmed: Vec<String> = values
        .iter()
        .filter(|v| v.trim().len() < v.len())
        .map(|v| v.trim().to_owned())
        .collect();
    values.extend(trimmed);
    values.retain(|v| v.chars().count() >= MIN_PII_CHARS);
    values.sort();
    values.dedup();
    values
}

fn strings_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        Value::Object(fields) => fields.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

/// `"..."` runs of a broken body that are not followed by `:` (keys).
fn quoted_values(text: &str, out: &mut Vec<String>) {
    let mut rest = text;
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('"') else { break };
        let value = &after[..end];
        let tail = after[end + 1..].trim_start();
        if !tail.starts_with(':') {
            out.push(value.to_owned());
        }
        rest = &after[end + 1..];
    }
}

/// Longer secrets (a whole newsletter) are looked for by their first and
/// last characters: a log that truncates a body still leaks it.
const NEEDLE_CHARS: usize = 64;

fn ends(secret: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = secret.char_indices().collect();
    if chars.len() <= NEEDLE_CHARS {
        return vec![secret];
    }
    let head_end = chars[NEEDLE_CHARS].0;
    let tail_start = chars[chars.len() - NEEDLE_CHARS].0;
    vec![&secret[..head_end], &secret[tail_start..]]
}

/// The forms a secret takes in a log line: as is; JSON-escaped (a field
/// of a JSON log line); Rust `Debug` of a string (a `?` field, an error)
/// and of bytes (`b"..."` request bodies: non-ASCII as `\xc3`), each also
/// JSON-escaped as the line's formatter then writes it; percent-encoded (a
/// URL or header). ASCII casing is handled by the matcher.
fn encodings(secret: &str) -> Vec<String> {
    let json = |text: &str| {
        serde_json::to_string(text)
            .map(|quoted| quoted[1..quoted.len() - 1].to_owned())
            .unwrap_or_default()
    };
    let debug = format!("{secret:?}");
    let debug = debug[1..debug.len() - 1].to_owned();
    let bytes = secret.as_bytes().escape_ascii().to_string();
    let percent: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let mut forms = vec![
        secret.to_owned(),
        // The matcher folds ASCII only: "Ë" needs its own lowercase form.
        secret.to_lowercase(),
        json(secret),
        json(&debug),
        json(&bytes),
        debug,
        bytes,
        percent,
    ];
    forms.retain(|f| !f.is_empty());
    forms.sort();
    forms.dedup();
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(kind: Kind, label: &'a str, text: impl Into<Cow<'a, str>>) -> Entry<'a> {
        Entry {
            kind,
            label: label.into(),
            text: text.into(),
        }
    }

    fn scan_entries(files: &[(String, Vec<Entry<'_>>)]) -> Report {
        let mut secrets = Secrets::default();
        files
            .iter()
            .flat_map(|(_, e)| e)
            .for_each(|e| secrets.learn(e));
        let mut audit = secrets.audit();
        for (program, entries) in files {
            entries.iter().for_each(|e| audit.check(program, e));
        }
        audit.report
    }

    fn secrets_of(report: &Report) -> Vec<(&str, Class)> {
        report
            .findings
            .iter()
            .map(|f| (f.secret.as_str(), f.class))
            .collect()
    }

    #[test]
    fn an_events_data_is_looked_for_like_a_message_body() {
        let input = r#"{"version":1,"kind":"event","recipient":{"user_id":"u-1"},"data":{"url":"https://shop.example/p/4711?utm=x","ip":"203.0.113.77"}}"#;
        let files = vec![(
            "archive_message".to_owned(),
            vec![
                entry(Kind::Input, "", input),
                entry(
                    Kind::Log,
                    "",
                    r#"{"clicked":"https://shop.example/p/4711?utm=x"}"#,
                ),
                entry(Kind::Log, "", r#"{"event_id":"ev-1","event_type":"click"}"#),
            ],
        )];
        let report = scan_entries(&files);
        assert_eq!(
            secrets_of(&report),
            vec![("https://shop.example/p/4711?utm=x", Class::Pii)]
        );
    }

    #[test]
    fn a_recipient_is_found_in_any_casing_and_encoding() {
        let input = r#"{"version":1,"recipient":{"email":"Ada.Lovelace@Example.com","user_id":"u-1"},"message":{"html_body":"<p>Secret plans</p>"}}"#;
        let files = vec![(
            "archive_message".to_owned(),
            vec![
                entry(Kind::Input, "", input),
                entry(
                    Kind::Log,
                    "",
                    r#"{"fields":{"to":"ada.lovelace@example.com"}}"#,
                ),
                entry(Kind::Log, "", "GET /b/k?who=Ada.Lovelace%40Example.com"),
                entry(Kind::Metric, "", r#"{"body":"\u003cp\u003eSecret plans"}"#),
                entry(Kind::Log, "", r#"{"msg":"<p>Secret plans</p>"}"#),
                entry(Kind::Log, "", r#"{"user":"u-1"}"#),
            ],
        )];
        let report = scan_entries(&files);
        assert_eq!(
            secrets_of(&report),
            vec![
                ("Ada.Lovelace@Example.com", Class::Pii),
                ("Ada.Lovelace@Example.com", Class::Pii),
                ("<p>Secret plans</p>", Class::Pii),
            ],
            "a short user id is not looked for; the escaped body prefix is not the whole body"
        );
        assert_eq!(report.secrets.get(&Class::Pii), Some(&2));
        assert_eq!(
            report
                .scanned
                .get(&("archive_message".to_owned(), Kind::Log)),
            Some(&4)
        );
    }

    #[test]
    fn an_external_id_belongs_only_in_a_setup_answer() {
        let id = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";
        let files = vec![(
            "validate_destination".to_owned(),
            vec![
                entry(Kind::Secret, "external_id", id),
                entry(
                    Kind::Response,
                    "GET /v1/setup 200",
                    format!(r#"{{"external_id":"{id}"}}"#),
                ),
                entry(
                    Kind::Response,
                    "POST /v1/destinations/validate 400",
                    format!(r#"{{"error":{{"message":"{id}"}}}}"#),
                ),
                entry(
                    Kind::Response,
                    "GET /v1/setup 401",
                    r#"{"error":{"code":"unauthorized"}}"#,
                ),
            ],
        )];
        let report = scan_entries(&files);
        assert_eq!(secrets_of(&report), vec![(id, Class::ExternalId)]);
        assert_eq!(
            report.findings[0].label,
            "POST /v1/destinations/validate 400"
        );
        assert_eq!(report.error_bodies.get("validate_destination"), Some(&2));
    }

    #[test]
    fn our_buckets_may_hold_external_ids_and_content_but_never_a_credential() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let id = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";
        let files = vec![(
            "emulator".to_owned(),
            vec![
                entry(Kind::Secret, "credential", secret),
                entry(Kind::Secret, "external_id", id),
                entry(
                    Kind::Stored,
                    "sm-control/orgs/acme/external-id.json",
                    format!(r#"{{"external_id":"{id}"}}"#),
                ),
                entry(
                    Kind::Stored,
                    "sm-control/destinations/acme/p/dst_x.json",
                    format!(r#"{{"auth":{{"secret":"{secret}"}}}}"#),
                ),
            ],
        )];
        let report = scan_entries(&files);
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert_eq!(report.findings[0].class, Class::Credential);
        assert_eq!(
            report.findings[0].label,
            "sm-control/destinations/acme/p/dst_x.json"
        );
    }

    #[test]
    fn credentials_and_broken_bodies_are_looked_for() {
        let files = vec![
            (
                "emulator".to_owned(),
                vec![entry(
                    Kind::Secret,
                    "credential",
                    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                )],
            ),
            (
                "archive_message".to_owned(),
                vec![
                    entry(
                        Kind::Input,
                        "",
                        r#"{"version":1,"recipient":{"email":"Broken.Body@Example.com""#,
                    ),
                    entry(
                        Kind::Log,
                        "",
                        "secret=wJalrXUtnFEMI%2FK7MDENG%2FbPxRfiCYEXAMPLEKEY",
                    ),
                    entry(Kind::Log, "", "quarantined body of 61 bytes"),
                    entry(Kind::Log, "", "parse error near broken.body@example.com"),
                ],
            ),
        ];
        let report = scan_entries(&files);
        assert_eq!(
            secrets_of(&report),
            vec![
                (
                    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    Class::Credential
                ),
                ("Broken.Body@Example.com", Class::Pii),
            ]
        );
    }

    #[test]
    fn debug_and_byte_string_forms_and_trimmed_values_are_found() {
        let input = r#"{"version":1,"recipient":{"email":" ZOË.Quote@Example.com "},"message":{"html_body":"<a href=\"x\">Café</a>\nline two"}}"#;
        let files = vec![(
            "archive_message".to_owned(),
            vec![
                entry(Kind::Input, "", input),
                // tracing's `?` field: Debug, then JSON-escaped by the formatter.
                entry(
                    Kind::Log,
                    "",
                    r#"{"fields":{"body":"\"<a href=\\\"x\\\">Café</a>\\nline two\""}}"#,
                ),
                // the SDK's byte-string Debug of a request body.
                entry(
                    Kind::Log,
                    "",
                    r#"{"fields":{"request":"b\"<a href=\\\"x\\\">Caf\\xc3\\xa9</a>\\nline two\""}}"#,
                ),
                // the normalised identity our code hashes.
                entry(Kind::Log, "", "identity zoë.quote@example.com"),
            ],
        )];
        let report = scan_entries(&files);
        let body = "<a href=\"x\">Café</a>\nline two";
        assert_eq!(
            secrets_of(&report),
            vec![
                (body, Class::Pii),
                (body, Class::Pii),
                ("ZOË.Quote@Example.com", Class::Pii),
            ]
        );
    }

    #[test]
    fn program_names_drop_cargos_hash_and_the_pid() {
        assert_eq!(
            program_of(Path::new("/t/archive_message-0a1b2c3d4e5f6789.4242.jsonl")),
            "archive_message"
        );
        assert_eq!(program_of(Path::new("/t/emulator.77.jsonl")), "emulator");
        assert_eq!(
            program_of(Path::new("/t/check-destinations.1.jsonl")),
            "check-destinations"
        );
    }
}

//! `make test`'s last step: reads the leak audit the emulator suite wrote
//! (see `stored_messages_testkit::leak_audit`) and fails on any secret found in a
//! log line, metric line or API answer, or on an audit too thin to mean
//! anything.
//!
//! Usage: leak_audit <dir>

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use stored_messages_testkit::leak_audit::{scan, Class, Kind};

/// The suites whose recordings must be there; each runs the emulator.
const PROGRAMS: [&str; 3] = [
    "archive_message",
    "check_destinations",
    "validate_destination",
];

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: leak_audit <dir>");
        return ExitCode::from(2);
    };
    let report = match scan(&dir) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("leak audit: cannot read {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };

    println!("leak audit of the emulator suite ({})", dir.display());
    println!(
        "| program | log lines | metric lines | API answers | of which 4xx/5xx | objects in our buckets | secrets found |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let programs: BTreeSet<&str> = report.scanned.keys().map(|(p, _)| p.as_str()).collect();
    for program in &programs {
        let count = |kind| {
            report
                .scanned
                .get(&(program.to_string(), kind))
                .copied()
                .unwrap_or(0)
        };
        let found = report
            .findings
            .iter()
            .filter(|f| f.program == *program)
            .count();
        println!(
            "| {program} | {} | {} | {} | {} | {} | {found} |",
            count(Kind::Log),
            count(Kind::Metric),
            count(Kind::Response),
            report.error_bodies.get(*program).copied().unwrap_or(0),
            count(Kind::Stored),
        );
    }
    let secrets = |class| report.secrets.get(&class).copied().unwrap_or(0);
    println!(
        "looked for: {} recipient/message values, {} External IDs, {} credentials, {} full access key ids (each as is, in any casing, JSON-escaped, as Rust Debug of a string or of bytes, and percent-encoded)",
        secrets(Class::Pii),
        secrets(Class::ExternalId),
        secrets(Class::Credential),
        secrets(Class::AccessKeyId)
    );

    let mut problems = vec![];
    for finding in &report.findings {
        problems.push(format!(
            "{} leaked into a {:?} line of {} ({}): {:?}\n    {}",
            finding.class.name(),
            finding.kind,
            finding.program,
            finding.label,
            finding.secret,
            finding.line
        ));
    }
    // An audit that recorded nothing would pass vacuously.
    for program in PROGRAMS {
        if !programs.contains(program) {
            problems.push(format!(
                "no recording from {program}: was the suite run with the audit on?"
            ));
        }
    }
    for (program, kind) in [
        ("archive_message", Kind::Metric),
        ("check_destinations", Kind::Metric),
        ("validate_destination", Kind::Response),
        ("emulator", Kind::Stored),
    ] {
        if !report.scanned.contains_key(&(program.to_owned(), kind)) {
            problems.push(format!("no {kind:?} lines recorded from {program}"));
        }
    }
    for class in [
        Class::Pii,
        Class::ExternalId,
        Class::Credential,
        Class::AccessKeyId,
    ] {
        if secrets(class) == 0 {
            problems.push(format!("no {} was recorded to look for", class.name()));
        }
    }
    if problems.is_empty() {
        println!("no secret in any line: OK");
        ExitCode::SUCCESS
    } else {
        for problem in &problems {
            eprintln!("{problem}");
        }
        eprintln!("leak audit: {} problem(s)", problems.len());
        ExitCode::FAILURE
    }
}

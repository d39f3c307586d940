"""Shows that each regression test of issue 13 ("real customer setups") can
fail: for each case, the fix is reverted in a scratch worktree of HEAD and the
case's emulator tests must then FAIL; the worktree is removed at the end.

    make revert-check        (about 6 minutes with a warm target/)

A line ending "PASSED (fix not shown!)" means a test does not prove its fix.
Exit status 1 if any does, or if a revert no longer applies (the code moved:
update the revert here).
"""
import os
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# (case, [(file, fixed text, reverted text)], [(package, test)])
CASES = [
 ("1 B01 KMS in session policy", [("shared/src/policy.rs", '"Statement": [put_object_statement(&resource), kms_session_statement(destination)],', '"Statement": if matches!(destination.encryption, Encryption::Kms { .. }) { vec![put_object_statement(&resource), kms_session_statement(destination)] } else { vec![put_object_statement(&resource)] },')],
  [("validate-destination","bucket_default_encryption_with_a_customer_key_validates"),("archive-message","bucket_default_kms_encryption_archives_instead_of_parking")]),
 ("2 B02 alias rendering", [("shared/src/policy.rs", "statements.extend(kms_key.map(customer_kms_statement));", "statements.extend(kms_key.map(|key| kms_statement(key.as_str())));")],
  [("validate-destination","a_pasted_setup_policy_for_a_kms_alias_grants_the_key")]),
 ("3 B03 wildcard folder", [("shared/src/destination.rs", "if segment.contains('*') {", "if segment.contains('\\u{0}') {"), ("shared/src/destination.rs", "pub const PUNCTUATION: &'static str = \"!_.'()-\";", "pub const PUNCTUATION: &'static str = \"!_.*'()-\";")],
  [("validate-destination","a_wildcard_folder_is_refused_everywhere"),("archive-message","a_stored_wildcard_folder_destination_is_skipped_and_reported")]),
 ("4 B04 conditional probe", [("shared/src/checks.rs", "encryption: &destination.encryption,\n                    write_once: true,", "encryption: &destination.encryption,\n                    write_once: false,")],
  [("validate-destination","a_write_once_bucket_policy_accepts_the_probe"),("check-destinations","a_write_once_bucket_stays_active")]),
 ("5 B05 bucket-policy wording", [("shared/src/writer.rs", "denied_by: facts.message.and_then(DeniedBy::from_message),", "denied_by: facts.message.and(None),")],
  [("validate-destination","an_encryption_demanding_bucket_policy_is_named_as_the_cause")]),
 ("6 B08 transient never moves", [("shared/src/health.rs", "if !failure.transient {", "if failure.transient || !failure.transient {")],
  [("check-destinations","transient_probe_failures_are_recorded_but_never_move_status")]),
 ("7 B09 duration cap", [("shared/src/config.rs", "RangeInclusive<usize> = 900..=3600;", "RangeInclusive<usize> = 900..=43200;")],
  [("validate-destination","a_session_above_one_hour_is_refused_at_start_and_by_sts")]),
 ("8 B11 revoked sessions", [("shared/src/writer.rs", "&& err.may_pass_with_a_new_session()", "&& err.may_pass_with_a_new_session() && false")],
  [("archive-message","revoked_sessions_are_renewed_once_instead_of_parking")]),
 ("9 B15 message_ref confinement", [("shared/src/request.rs", "        if bucket != staging.as_str() {", "        if bucket.is_empty() {"), ("shared/src/request.rs", "        if !confined || key.len() > 1024 {", "        if !confined && key.is_empty() {"), ("shared/src/request.rs", "        Ok(Self {\n            bucket: staging.clone(),", "        Ok(Self {\n            bucket: BucketName::parse(bucket).unwrap_or_else(|_| staging.clone()),")],
  [("archive-message","a_message_ref_outside_the_orgs_staging_prefix_is_never_read")]),
 ("10 B14 owner on our buckets", [("shared/src/registry.rs", ".expected_bucket_owner(self.owner.as_str())", ".set_expected_bucket_owner(None::<String>)")],
  [("archive-message","a_control_bucket_recreated_by_another_account_receives_nothing"),("archive-message","a_staging_bucket_recreated_by_another_account_is_never_read")]),
]


def main():
    scratch = tempfile.mkdtemp(prefix="revert-check-")
    root = os.path.join(scratch, "tree")
    subprocess.run(["git", "worktree", "add", "-q", "--detach", root, "HEAD"], cwd=REPO, check=True)
    os.symlink(os.path.join(REPO, ".venv"), os.path.join(root, ".venv"))
    # One shared target/: only the workspace crates rebuild per revert.
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(REPO, "target"))
    shown = True
    try:
        for name, reverts, tests in CASES:
            subprocess.run(["git", "checkout", "-q", "--", "."], cwd=root, check=True)
            for path, old, new in reverts:
                file = os.path.join(root, path)
                text = open(file).read()
                if old not in text:
                    print(f"{name}: the revert of {path} no longer applies", flush=True)
                    shown = False
                    continue
                open(file, "w").write(text.replace(old, new))
            for package, test in tests:
                run = subprocess.run(
                    ["cargo", "test", "-q", "--locked", "-p", package, test],
                    cwd=root, env=env, capture_output=True, text=True, timeout=1500,
                )
                output = run.stdout + run.stderr
                if "error[" in output:
                    verdict = "DID NOT BUILD (update the revert)"
                    shown = False
                elif run.returncode == 0:
                    verdict = "PASSED (fix not shown!)"
                    shown = False
                else:
                    verdict = "fails without the fix"
                print(f"case {name:32} {package:22} {test}: {verdict}", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", root], cwd=REPO, check=False)
    sys.exit(0 if shown else 1)


if __name__ == "__main__":
    main()

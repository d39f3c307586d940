"""Offline checks of our two templates; exits non-zero on any finding.

Plain `cfn-lint` and `sam validate --lint` on a SAM source accept badly broken
templates (LOCAL-AWS.md, "Template checks": a misspelt ReportBatchItemFailures,
a batch size of 100000, a missing !GetAtt target, `rate(1 dayz)`), because the
SAM resources hide what they become. So:

1. template.yaml is translated to CloudFormation offline with
   aws-sam-translator (a stub managed-policy loader, placeholder s3:// code
   locations, AWS_DEFAULT_REGION set), and cfn-lint runs on that JSON;
2. cfn-lint runs on customer-role.yaml as it is;
3. checkov scans both sources and the translated JSON (the reasoned
   suppressions live in the source: a `checkov: skip:` entry with a comment
   in the resource's Metadata, which the translation keeps).

Warnings count as findings, like errors: each one is fixed, or suppressed in
the template with the reason next to it.

    python infra/check_templates.py [--no-checkov] [SAM_TEMPLATE [CUSTOMER_TEMPLATE]]

checkov lives in its own virtualenv ($VENV/checkov, from
infra/requirements-checkov.txt: it pins boto3 and older packaging/networkx,
which the project venv cannot take next to moto). Set CHECKOV to another
executable to use it instead.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time

# The translator builds ARNs and checks region-specific features from the
# environment's region; any commercial region gives the same output here.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from cfnlint.api import ManualArgs, lint  # noqa: E402
from cfnlint.decode import cfn_yaml  # noqa: E402
from samtranslator.model.exceptions import InvalidDocumentException  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402

# The translator warns at exit about usage metrics it never publishes offline.
logging.getLogger("samtranslator").setLevel(logging.ERROR)

HERE = os.path.dirname(os.path.abspath(__file__))
SAM_TEMPLATE = os.path.join(HERE, "template.yaml")
CUSTOMER_TEMPLATE = os.path.join(HERE, "customer-role.yaml")
LINT_REGIONS = ["us-east-1", "eu-west-1"]

# Code locations are only known after `make build`; the translator insists on
# an S3 URI, so any placeholder does (nothing is fetched).
PLACEHOLDER_CODE_URI = "s3://stored-messages-template-check/{name}.zip"

class StubManagedPolicyLoader:
    """Managed policies by name: none are used, and nothing is fetched."""

    def load(self) -> dict:
        return {}


def load(text: str, name: str = "template") -> dict:
    """A template, with !Ref/!GetAtt/!Sub as their long JSON forms."""
    parsed = cfn_yaml.loads(text, name)
    # Plain dicts and strings: the translator and json.dumps need no node types.
    return json.loads(json.dumps(parsed))


def translate(sam: dict) -> dict:
    """The CloudFormation a SAM template becomes. Raises ValueError listing
    every problem the translator found."""
    sam = copy.deepcopy(sam)
    for name, resource in sam.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            properties = resource.setdefault("Properties", {})
            if not str(properties.get("CodeUri", "")).startswith("s3://"):
                properties["CodeUri"] = PLACEHOLDER_CODE_URI.format(name=name)
    try:
        return transform(sam, {}, StubManagedPolicyLoader())
    except InvalidDocumentException as err:
        raise ValueError("; ".join(cause.message for cause in err.causes)) from err
    except Exception as err:  # the translator also raises plain errors on bad input
        raise ValueError(f"{type(err).__name__}: {err}") from err


def cfn_lint(template: dict | str, name: str) -> list[str]:
    """cfn-lint's errors and warnings on a template: a dict (a translation,
    reported by path) or the YAML/JSON text of a file (reported by line)."""
    from_text = isinstance(template, str)
    text = template if from_text else json.dumps(template, indent=1)
    problems = []
    for match in lint(text, config=ManualArgs(regions=LINT_REGIONS)):
        if match.rule.id[0] not in "EW":
            continue
        where = f"line {match.linenumber}" if from_text else "/".join(str(p) for p in match.path or [])
        problems.append(f"{name}: cfn-lint {match.rule.id} {where}: {match.message}")
    return problems


def check_sam(text: str, name: str = "template.yaml") -> list[str]:
    """Every translation and lint finding on a SAM template's text."""
    try:
        sam = load(text, name)
    except Exception as err:
        return [f"{name}: not a template: {err}"]
    try:
        translated = translate(sam)
    except ValueError as err:
        return [f"{name}: SAM translation failed: {err}"]
    return cfn_lint(translated, f"{name} (translated)")


def check_customer(text: str, name: str = "customer-role.yaml") -> list[str]:
    try:
        load(text, name)
    except Exception as err:
        return [f"{name}: not a template: {err}"]
    return cfn_lint(text, name)


def checkov_executable() -> str | None:
    explicit = os.environ.get("CHECKOV")
    if explicit:
        return explicit
    beside = os.path.join(sys.prefix, "checkov", "bin", "checkov")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("checkov")


def checkov(paths: list[str]) -> list[str]:
    """checkov's failed checks on each template, in one run (its start-up is
    most of its time); suppressed checks are not failures."""
    executable = checkov_executable()
    if executable is None:
        return ["checkov is not installed: run `make infra-tools` (its own virtualenv, see infra/infra.mk)"]
    command = [executable, "--quiet", "--compact", "--framework", "cloudformation", "--output", "json",
               # No network: no guideline links or severities are downloaded.
               "--skip-download"]
    for path in paths:
        command += ["-f", path]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        reports = json.loads(result.stdout)
    except json.JSONDecodeError:
        return [f"checkov failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}"]
    reports = reports if isinstance(reports, list) else [reports]
    scanned = sum(r.get("summary", {}).get("resource_count", 0) for r in reports if isinstance(r, dict))
    if scanned == 0:
        return [f"checkov scanned no resource in {paths}: {result.stderr.strip()[-2000:]}"]
    problems = []
    for report in reports:
        summary = report.get("summary", {})
        if summary.get("parsing_errors"):
            problems.append(f"checkov could not parse {summary['parsing_errors']} file(s)")
        for failed in (report.get("results") or {}).get("failed_checks", []):
            problems.append(
                f"{failed.get('file_path', '?')}: checkov {failed['check_id']} {failed['resource']}: {failed['check_name']}"
            )
    return problems


def translated_copy(sam_path: str, directory: str) -> str | None:
    """The translated template as a JSON file (for checkov), or None when the
    template does not translate (already reported by check_sam)."""
    try:
        with open(sam_path, encoding="utf-8") as source:
            translated = translate(load(source.read(), sam_path))
    except Exception:
        return None
    path = os.path.join(directory, "template.translated.json")
    with open(path, "w", encoding="utf-8") as out:
        json.dump(translated, out, indent=1)
    return path


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    use_checkov = "--no-checkov" not in argv
    sam_path = args[0] if args else SAM_TEMPLATE
    customer_path = args[1] if len(args) > 1 else CUSTOMER_TEMPLATE
    problems = []
    started = time.monotonic()
    with open(sam_path, encoding="utf-8") as source:
        problems += check_sam(source.read(), os.path.relpath(sam_path))
    with open(customer_path, encoding="utf-8") as source:
        problems += check_customer(source.read(), os.path.relpath(customer_path))
    linted = time.monotonic()
    if use_checkov:
        # The source carries the reasoned suppressions; the translation adds
        # what SAM generates (stage, event source mapping, permissions, rule),
        # and keeps each function's Metadata, so the same suppressions apply.
        with tempfile.TemporaryDirectory() as scratch:
            translated = translated_copy(sam_path, scratch)
            problems += checkov([sam_path, customer_path] + ([translated] if translated else []))
    for line in problems:
        print(line)
    print(
        f"template checks: {len(problems)} finding(s); translate+cfn-lint {linted - started:.1f} s"
        + (f", checkov {time.monotonic() - linted:.1f} s" if use_checkov else ", checkov skipped")
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

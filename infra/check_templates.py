"""Offline checks of our templates, as `make test` runs them.

`sam validate --lint` and plain cfn-lint on a SAM source accept badly broken
templates (LOCAL-AWS.md measured it), so the SAM template is first translated
to CloudFormation with aws-sam-translator, and cfn-lint runs on the result.
checkov then scans both templates; by-design findings are suppressed next to
the resource with a written reason.

Usage: check_templates.py [SAM_TEMPLATE] [CUSTOMER_TEMPLATE]; exits non-zero on any finding.
"""

import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from cfnlint.decode import cfn_yaml  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
VENV_BIN = os.path.dirname(sys.executable)


class StubPolicyLoader:
    """Managed policies resolve to placeholder ARNs; nothing is fetched."""

    def load(self):
        return {}


def translate(sam_path):
    """The CloudFormation a SAM template becomes, offline."""
    template = cfn_yaml.load(sam_path)
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            # Translation needs an s3:// code location; the build fills in the real one.
            resource.setdefault("Properties", {})["CodeUri"] = "s3://placeholder-bucket/function.zip"
    return transform(template, {}, StubPolicyLoader())


def cfn_lint(path):
    return subprocess.run([os.path.join(VENV_BIN, "cfn-lint"), "--format", "parseable", path], capture_output=True, text=True)


def checkov(path):
    return subprocess.run(
        [os.path.join(VENV_BIN, "checkov"), "--quiet", "--compact", "--framework", "cloudformation", "-f", path],
        capture_output=True,
        text=True,
    )


def check(sam_path, customer_path):
    """Every problem found, as lines; empty when both templates are clean."""
    problems = []
    try:
        translated = translate(sam_path)
    except Exception as err:  # the translator raises its own error types
        return [f"{sam_path}: SAM translation failed: {err}"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
        json.dump(translated, out, default=str)
        translated_path = out.name
    try:
        for path, label in ((translated_path, f"{sam_path} (translated)"), (customer_path, customer_path)):
            result = cfn_lint(path)
            if result.returncode != 0:
                problems += [f"{label}: cfn-lint: {line}" for line in result.stdout.splitlines() if line.strip()]
        for path in (sam_path, customer_path):
            result = checkov(path)
            if result.returncode != 0:
                problems += [f"{path}: checkov: {line}" for line in result.stdout.splitlines() if line.strip()]
    finally:
        os.unlink(translated_path)
    return problems


def main():
    sam_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "template.yaml")
    customer_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "customer-role.yaml")
    problems = check(sam_path, customer_path)
    for line in problems:
        print(line)
    print(f"template checks: {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

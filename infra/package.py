"""Writes the template `make deploy` hands to `sam deploy`: infra/template.yaml
with each function's CodeUri pointing at the zip `make build` made
(target/lambda/<binary>.zip), so what is deployed is exactly what was built
and tested, without a second build by `sam build`.

    python infra/package.py target/lambda/template.json
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import check_templates  # noqa: E402


def package(out_path: str) -> list[str]:
    """Writes the deployable template beside the zips; returns the zips it uses."""
    with open(check_templates.SAM_TEMPLATE, encoding="utf-8") as source:
        template = check_templates.load(source.read(), check_templates.SAM_TEMPLATE)
    out_dir = os.path.dirname(os.path.abspath(out_path))
    zips = []
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        artifact = os.path.join(out_dir, f"{binary}.zip")
        if not os.path.isfile(artifact):
            raise SystemExit(f"{artifact} is missing: run `make build` first")
        # SAM resolves a local CodeUri against the template's own directory.
        resource["Properties"]["CodeUri"] = os.path.basename(artifact)
        zips.append(artifact)
    with open(out_path, "w", encoding="utf-8") as out:
        json.dump(template, out, indent=2)
    return zips


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    for artifact in package(sys.argv[1]):
        print(f"{sys.argv[1]}: {os.path.relpath(artifact)} ({os.path.getsize(artifact)} bytes)")

"""Renders charts/stratum offline with Helm's own Go SDK (helm-python-sdk)
for each values file, lints it, and validates every rendered manifest and
CRD against the Kubernetes OpenAPI schemas (kubernetes-validate, strict:
unknown fields are errors). Kinds outside Kubernetes itself (the optional
ServiceMonitor) are checked for their required fields only.

Usage: python scripts/check_chart.py  (see scripts/check-chart.sh)
"""

import pathlib
import sys

import helm_python
import jsonschema
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "stratum"
KUBE_VERSION = "1.30.0"
# Kinds whose schemas are not Kubernetes' own: the required fields only.
FOREIGN = {("monitoring.coreos.com/v1", "ServiceMonitor")}
CASES = {
    "defaults (SQLite, one replica)": {},
    "values-ha.yaml (external PostgreSQL, 3 replicas)": CHART / "values-ha.yaml",
    "values-bundled-postgres.yaml": CHART / "values-bundled-postgres.yaml",
}
# Values the chart must refuse, and a piece of the message.
REFUSED = {
    "3 replicas on SQLite": ({"replicaCount": 3}, "needs PostgreSQL"),
    "bundled and external database": (
        {"postgresql": {"enabled": True}, "database": {"url": "postgres://x"}},
        "exclude each other",
    ),
}


def load_values(source):
    if isinstance(source, dict):
        return source
    return yaml.safe_load(source.read_text()) or {}


def documents(manifests):
    for path, text in sorted(manifests.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                yield path, doc


def check(name, doc):
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in FOREIGN:
        missing = [f for f in ("apiVersion", "kind", "metadata", "spec") if f not in doc]
        if missing:
            raise ValueError(f"{name}: {key[1]} lacks {missing}")
        return
    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def main():
    chart = helm_python.Chart.load(str(CHART))
    failures = 0
    crds = [
        (f'{c["name"]} ({doc["metadata"]["name"]})', doc)
        for c in chart.crds
        for doc in yaml.safe_load_all(c["data"])
        if doc
    ]
    for name, doc in crds:
        try:
            check(name, doc)
        except Exception as e:  # noqa: BLE001 - report every failure
            failures += 1
            print(f"FAIL crd {name}: {e}")
    # The demo's ScrapeConfig and Topology documents fit the CRDs' schemas.
    schemas = {
        doc["spec"]["names"]["kind"]: doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for _, doc in crds
    }
    checked = 0
    for path in sorted((ROOT / "demo" / "scrapers").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") not in schemas:
                continue
            errors = list(jsonschema.Draft7Validator(schemas[doc["kind"]]).iter_errors(doc))
            checked += 1
            for error in errors:
                failures += 1
                print(f"FAIL {path.name} {doc['kind']} {doc['metadata']['name']}: {error.message} at {list(error.path)}")
    print(f"ok: {checked} demo documents fit the CRD schemas")
    for case, source in CASES.items():
        values = load_values(source)
        report = helm_python.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}")
        for message in report.get("messages", []):
            if message.get("severity", 0) >= 2:
                failures += 1
                print(f"FAIL lint [{case}]: {message}")
        manifests = chart.render(values, name="stratum", namespace="catalog", is_install=True)
        kinds = []
        for path, doc in documents(manifests):
            kinds.append(doc["kind"])
            try:
                check(f"{path} ({doc['kind']} {doc['metadata'].get('name')})", doc)
            except Exception as e:  # noqa: BLE001
                failures += 1
                print(f"FAIL [{case}] {path}: {e}")
        print(f"ok [{case}]: {len(kinds)} manifests: {', '.join(sorted(kinds))}")
    for case, (values, expected) in REFUSED.items():
        try:
            chart.render(values, name="stratum", namespace="catalog", is_install=True)
        except helm_python.HelmError as e:
            if expected not in str(e):
                failures += 1
                print(f"FAIL [{case}]: refused, but with {e}")
            else:
                print(f"ok [{case}]: refused ({expected})")
        else:
            failures += 1
            print(f"FAIL [{case}]: rendered, but must be refused")
    print(f"ok: {len(crds)} CRDs" if not failures else f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

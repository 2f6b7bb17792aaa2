"""Render overlays and validate every object the way a cluster would refuse it: Kubernetes 1.32's own
kinds strictly (the kubernetes-validate package's schemas), and KServe's, KEDA's and the Prometheus
operator's kinds against their pinned upstream CRDs (schemas/pins.yaml), unknown fields refused as
`kubectl apply --validate=strict` refuses them. Offline: no cluster, no network.

    python deploy/kubernetes/validate.py overlays/cpu overlays/gpu
"""
from __future__ import annotations

import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
SCHEMAS = HERE / "schemas"
KUBERNETES = "1.32.0"  # the oldest Kubernetes we support; KServe 0.20 supports 1.32 and later


def render(overlay: Path) -> list[dict]:
    """`kubectl kustomize` of one overlay, as objects."""
    out = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay} failed: {out.stderr.strip()}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def strict(schema: Any) -> Any:
    """A CRD's structural schema with unknown fields refused wherever it lists its fields and does not
    keep unknown ones (the API server prunes them silently; strict validation reports them)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@lru_cache(maxsize=1)
def crd_schemas() -> dict[str, dict]:
    """{"group/version/Kind": strict openAPIV3Schema} for every served version of the pinned CRDs."""
    pins = yaml.safe_load((SCHEMAS / "pins.yaml").read_text())
    schemas: dict[str, dict] = {}
    for project in pins.values():
        for name in project["files"]:
            for crd in yaml.load_all((SCHEMAS / name).read_text(), Loader=yaml.CSafeLoader):
                if not crd:
                    continue
                spec = crd["spec"]
                for version in spec["versions"]:
                    if version.get("served"):
                        key = f"{spec['group']}/{version['name']}/{spec['names']['kind']}"
                        schemas[key] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


def problems(obj: dict) -> list[str]:
    """Why the cluster would refuse `obj` ([] when it would take it)."""
    where = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"
    api = obj.get("apiVersion", "")
    group = api.split("/")[0] if "/" in api else ""
    if "." in group and not group.endswith("k8s.io"):  # a custom resource
        schema = crd_schemas().get(f"{api}/{obj.get('kind')}")
        if schema is None:
            return [f"{where}: no pinned CRD serves {api} {obj.get('kind')} (schemas/pins.yaml)"]
        errors = jsonschema.Draft7Validator(schema).iter_errors(obj)
        return [f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{where}: {'/'.join(map(str, exc.path))}: {exc.message}"]
    return []


def main(argv: list[str]) -> int:
    failed = 0
    for overlay in argv or ["overlays/cpu", "overlays/gpu"]:
        path = Path(overlay) if Path(overlay).is_dir() else HERE / overlay
        objects = render(path)
        found = [p for obj in objects for p in problems(obj)]
        print(f"{overlay}: {len(objects)} objects, " + ("valid" if not found else f"{len(found)} problems"))
        for p in found:
            print(f"  {p}")
        failed += bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

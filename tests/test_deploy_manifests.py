"""The Kubernetes manifests in deploy/: rendered as kubectl would apply them, checked for what the
gateway needs to start and to be routed to (image, port, probes, config mount, secrets), and the
catalog they ship validated by Nuri's own config loader.

Rendered with `kubectl kustomize`; without kubectl, the base is assembled from its files (resources,
the generated ConfigMap, the image mapping) and the overlay is skipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from nuri.config import parse_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
KUBECTL = shutil.which("kubectl")
SECRET_ENV = {"NURI_ADMIN_KEY", "NURI_AUDIT_HMAC_KEY", "NURI_AUDIT_SIGNING_KEY", "NURI_DATABASE_URL", "NURI_REDIS_URL"}


def _assemble_base() -> list[dict[str, Any]]:
    """What `kubectl kustomize deploy/base` would give, minus name hashes and common labels."""
    kustomization = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / "base" / name).read_text()) if d]
    for gen in kustomization.get("configMapGenerator", []):
        data = {f: (DEPLOY / "base" / f).read_text() for f in gen["files"]}
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization.get("images", [])}
    for doc in docs:
        for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            c["image"] = images.get(c["image"], c["image"])
        doc.setdefault("metadata", {}).setdefault("namespace", kustomization.get("namespace"))
    return docs


def render(target: str) -> list[dict[str, Any]]:
    if KUBECTL is None:
        if target != "base":
            pytest.skip("kubectl is not installed; only the base can be assembled without it")
        return _assemble_base()
    out = subprocess.run([KUBECTL, "kustomize", str(DEPLOY / target)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("target", ["base", "overlays/example"])
def test_gateway_has_image_port_probes_config_and_secrets(target):
    docs = render(target)
    gateway = one(docs, "StatefulSet", "nuri")
    pod = gateway["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "nuri"]
    assert re.fullmatch(r"[\w.-]+(:\d+)?/[\w./-]+:[\w.-]+", container["image"]), container["image"]

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    args = container["args"]
    assert args[0] == "serve" and args[args.index("--port") + 1] == str(ports["http"])
    assert args[args.index("--host") + 1] == "0.0.0.0"
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}

    config_path = Path(args[args.index("--config") + 1])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    config_map = one(docs, "ConfigMap", "nuri-config")
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]        # the generated (hashed) name
    assert config_path.name in config_map["data"]

    from_secrets = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert from_secrets >= SECRET_ENV
    data_dir = args[args.index("--data-dir") + 1]
    assert any(m["mountPath"] == data_dir for m in container["volumeMounts"])
    assert any(t["metadata"]["name"] == "data" for t in gateway["spec"]["volumeClaimTemplates"])

    service = one(docs, "Service", "nuri")
    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] and all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


@pytest.mark.parametrize("target", ["base", "overlays/example"])
def test_shipped_catalog_is_valid_and_points_at_services_in_the_manifests(target):
    docs = render(target)
    text = one(docs, "ConfigMap", "nuri-config")["data"]["nuri.yaml"]
    (container,) = one(docs, "StatefulSet", "nuri")["spec"]["template"]["spec"]["containers"]
    named = {e["name"] for e in container.get("env", [])}
    optional_secrets = [s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s]
    referenced = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    # every ${VAR} is set from a Secret, either by name or through the upstream-keys Secret
    assert referenced <= named or optional_secrets, referenced - named
    cfg = parse_config(text, "nuri.yaml", env={name: "x" for name in referenced})

    services = {d["metadata"]["name"]: {p["port"] for p in d["spec"]["ports"]} for d in docs if d["kind"] == "Service"}
    in_cluster = [d for d in cfg.deployments if d.base_url and "." not in (urlsplit(d.base_url).hostname or ".")]
    assert in_cluster, "the manifests should carry an in-country model of their own"
    for dep in in_cluster:
        url = urlsplit(dep.base_url)
        assert url.port in services.get(url.hostname or "", set()), f"{dep.id}: no Service {url.hostname}:{url.port}"
    engines = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    assert {urlsplit(d.base_url).hostname for d in in_cluster} <= engines


def test_containerfile_runs_the_gateway_as_the_manifests_expect():
    text = (DEPLOY / "Containerfile").read_text()
    docs = render("base")
    (container,) = one(docs, "StatefulSet", "nuri")["spec"]["template"]["spec"]["containers"]
    assert 'ENTRYPOINT ["nuri"]' in text
    assert f"EXPOSE {container['ports'][0]['containerPort']}" in text
    assert re.search(r"^USER 10001$", text, re.M)         # matches runAsUser in the pod security context
    assert 'pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}"' in text   # no extras: no compiler needed

#!/usr/bin/env python3
"""Consistency checks of the deployment recipes in deploy/ that no schema expresses.

scripts/check-deploy runs it after the schema validation. It reads the Kubernetes
manifests, the Compose file, the Prometheus configuration and the Dockerfiles, plus the
sources they must agree with (the `PHOENIX_*` variables the binaries read, the server's
routes in docs/openapi.json, the agent's routes in phoenix-agent/src/serve.rs), and checks
what a schema cannot: probes on real routes, limits everywhere, hostPID on the agent,
network policies selecting the right pods, secrets that resolve, Compose health ordering.

    check_manifests.py ROOT              check the repository at ROOT
    check_manifests.py --self-test ROOT  also prove that each check fails on a broken copy

Needs PyYAML. Exit status 1 when a check fails.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

WORKLOAD_KINDS = ("Deployment", "DaemonSet")
SERVER_IMAGE = "phoenix-server"
AGENT_IMAGE = "phoenix-agent"
# Variables read by something other than the binaries' clap definitions.
EXTRA_ENV = {"NODE_NAME", "RUST_LOG"}


@dataclass
class Deploy:
    """Everything the checks read, loaded once (and mutated by the self-test)."""

    root: Path
    k8s: list[tuple[str, dict]] = field(default_factory=list)
    kustomization: dict = field(default_factory=dict)
    k8s_files: set[str] = field(default_factory=set)
    compose: dict = field(default_factory=dict)
    prometheus: dict = field(default_factory=dict)
    dockerfiles: dict[str, str] = field(default_factory=dict)
    server_env: set[str] = field(default_factory=set)
    agent_env: set[str] = field(default_factory=set)
    server_paths: set[str] = field(default_factory=set)
    agent_paths: set[str] = field(default_factory=set)


def load(root: Path) -> Deploy:
    d = Deploy(root=root)
    k8s_dir = root / "deploy" / "k8s"
    for path in sorted(k8s_dir.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            d.kustomization = yaml.safe_load(path.read_text())
            continue
        d.k8s_files.add(path.name)
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                d.k8s.append((path.name, doc))
    d.compose = yaml.safe_load((root / "deploy" / "docker-compose.yml").read_text())
    d.prometheus = yaml.safe_load((root / "deploy" / "prometheus.yml").read_text())
    for path in sorted((root / "deploy" / "docker").glob("*.Dockerfile")):
        d.dockerfiles[path.name] = path.read_text()
    env_re = re.compile(r'env\s*=\s*"([A-Z0-9_]+)"')
    d.server_env = set(env_re.findall((root / "phoenix-server/src/cli.rs").read_text()))
    d.agent_env = set(env_re.findall((root / "phoenix-agent/src/config.rs").read_text()))
    d.server_paths = set(json.loads((root / "docs/openapi.json").read_text())["paths"])
    serve = (root / "phoenix-agent/src/serve.rs").read_text()
    d.agent_paths = {p for p in ("/healthz", "/metrics", "/metrics/baseline", "/metrics/candidate")
                     if f'"{p}"' in serve}
    return d


# --- helpers -------------------------------------------------------------------------

def docs(d: Deploy, kind: str) -> list[dict]:
    return [doc for _, doc in d.k8s if doc.get("kind") == kind]


def one(d: Deploy, kind: str, name: str) -> dict | None:
    for doc in docs(d, kind):
        if doc.get("metadata", {}).get("name") == name:
            return doc
    return None


def selects(selector: dict | None, labels: dict) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def namespace_labels(d: Deploy, name: str) -> dict:
    ns = one(d, "Namespace", name) or {}
    labels = dict(ns.get("metadata", {}).get("labels") or {})
    labels["kubernetes.io/metadata.name"] = name  # set by the API server on every namespace
    return labels


def pod_spec(workload: dict) -> dict:
    return workload.get("spec", {}).get("template", {}).get("spec", {})


def pod_labels(workload: dict) -> dict:
    return workload.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}


def image_of(container: dict) -> str:
    return container.get("image", "").rsplit("/", 1)[-1].split(":", 1)[0]


def workloads(d: Deploy, image: str) -> list[tuple[dict, dict]]:
    """(workload, main container) for every workload whose main container runs `image`."""
    found = []
    for kind in WORKLOAD_KINDS:
        for w in docs(d, kind):
            for c in pod_spec(w).get("containers") or []:
                if image_of(c) == image:
                    found.append((w, c))
    return found


def env_map(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env") or []}


def port_number(container: dict, port) -> int | None:
    for p in container.get("ports") or []:
        if port in (p.get("name"), p.get("containerPort")):
            return p.get("containerPort")
    return None


def listen_port(value: str) -> int:
    return int(value.rsplit(":", 1)[1])


def expand(value: str) -> str:
    """Compose interpolation with an empty environment: `${VAR:-default}` -> default."""
    out, i = "", 0
    while i < len(value):
        if value.startswith("${", i):
            depth, j = 1, i + 2
            while depth:
                depth += {"{": 1, "}": -1}.get(value[j], 0)
                j += 1
            inner = value[i + 2 : j - 1]
            out += expand(inner.split(":-", 1)[1]) if ":-" in inner else ""
            i = j
        else:
            out += value[i]
            i += 1
    return out


# --- checks --------------------------------------------------------------------------

def check_kustomization(d: Deploy) -> list[str]:
    listed = set(d.kustomization.get("resources") or [])
    errors = [f"kustomization.yaml lists {f}, which does not exist" for f in sorted(listed - d.k8s_files)]
    errors += [f"{f} is not listed in kustomization.yaml" for f in sorted(d.k8s_files - listed)]
    return errors


def check_metadata(d: Deploy) -> list[str]:
    errors = []
    namespaces = {doc["metadata"]["name"] for doc in docs(d, "Namespace")}
    for file, doc in d.k8s:
        meta = doc.get("metadata") or {}
        if not (doc.get("apiVersion") and doc.get("kind") and meta.get("name")):
            errors.append(f"{file}: a document lacks apiVersion, kind or metadata.name")
        elif doc["kind"] != "Namespace" and meta.get("namespace") not in namespaces:
            errors.append(f"{file}: {doc['kind']}/{meta['name']} is not in a namespace defined here")
    return errors


def check_workloads(d: Deploy) -> list[str]:
    """Limits on every container; probes on real routes; a non-root, read-only main container."""
    errors = []
    for kind in WORKLOAD_KINDS:
        for w in docs(d, kind):
            name = f"{kind}/{w['metadata']['name']}"
            spec = pod_spec(w)
            if spec.get("automountServiceAccountToken") is not False:
                errors.append(f"{name}: automountServiceAccountToken must be false")
            for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
                res = c.get("resources") or {}
                for part in ("requests", "limits"):
                    for r in ("cpu", "memory"):
                        if r not in (res.get(part) or {}):
                            errors.append(f"{name}/{c['name']}: no {part}.{r}")
                sc = c.get("securityContext") or {}
                if sc.get("allowPrivilegeEscalation") is not False:
                    errors.append(f"{name}/{c['name']}: allowPrivilegeEscalation must be false")
                if sc.get("readOnlyRootFilesystem") is not True:
                    errors.append(f"{name}/{c['name']}: readOnlyRootFilesystem must be true")
                if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                    errors.append(f"{name}/{c['name']}: capabilities must drop ALL")
            for c in spec.get("containers") or []:
                image = image_of(c)
                routes = {SERVER_IMAGE: d.server_paths, AGENT_IMAGE: d.agent_paths}.get(image)
                if routes is None:
                    errors.append(f"{name}/{c['name']}: image {image} is neither {SERVER_IMAGE} nor {AGENT_IMAGE}")
                    continue
                non_root = (c.get("securityContext") or {}).get("runAsNonRoot",
                            (spec.get("securityContext") or {}).get("runAsNonRoot"))
                if non_root is not True:
                    errors.append(f"{name}/{c['name']}: runAsNonRoot must be true")
                for probe in ("readinessProbe", "livenessProbe"):
                    get = (c.get(probe) or {}).get("httpGet")
                    if not get:
                        errors.append(f"{name}/{c['name']}: no HTTP {probe}")
                        continue
                    if get.get("path") not in routes:
                        errors.append(f"{name}/{c['name']}: {probe} path {get.get('path')} is not a route of {image}")
                    if port_number(c, get.get("port")) is None:
                        errors.append(f"{name}/{c['name']}: {probe} port {get.get('port')} is not a container port")
                if image == SERVER_IMAGE:
                    ready = ((c.get("readinessProbe") or {}).get("httpGet") or {}).get("path")
                    live = ((c.get("livenessProbe") or {}).get("httpGet") or {}).get("path")
                    if ready != "/readyz" or live != "/healthz":
                        errors.append(f"{name}/{c['name']}: readiness must be /readyz (store) and liveness /healthz (process)")
    return errors


def check_env_names(d: Deploy) -> list[str]:
    """Every PHOENIX_* variable set anywhere is one the binary reads."""
    errors = []
    known = {SERVER_IMAGE: d.server_env, AGENT_IMAGE: d.agent_env}
    for kind in WORKLOAD_KINDS:
        for w in docs(d, kind):
            for c in pod_spec(w).get("containers") or []:
                for var in env_map(c):
                    if var not in known.get(image_of(c), set()) | EXTRA_ENV:
                        errors.append(f"{kind}/{w['metadata']['name']}: {var} is not read by {image_of(c)}")
    for name, svc in (d.compose.get("services") or {}).items():
        image = (svc.get("image") or "").split(":", 1)[0]
        if image in known:
            for var in svc.get("environment") or {}:
                if var not in known[image] | EXTRA_ENV:
                    errors.append(f"compose {name}: {var} is not read by {image}")
    for file, text in d.dockerfiles.items():
        image = file.split(".", 1)[0]
        for var in re.findall(r"^ENV\s+([A-Z0-9_]+)=", text, re.M):
            if var not in known.get(f"phoenix-{image}", set()):
                errors.append(f"{file}: ENV {var} is not read by phoenix-{image}")
    return errors


def check_server(d: Deploy) -> list[str]:
    errors = []
    found = workloads(d, SERVER_IMAGE)
    if len(found) != 1:
        return [f"expected one workload running {SERVER_IMAGE}, found {len(found)}"]
    w, c = found[0]
    if w["kind"] != "Deployment" or (w["spec"].get("replicas") or 1) < 2:
        errors.append("the server must be a Deployment with at least 2 replicas")
    env = env_map(c)
    store = env.get("PHOENIX_STORE", {})
    if "secretKeyRef" not in (store.get("valueFrom") or {}):
        errors.append("PHOENIX_STORE must come from a Secret (several replicas need a shared store)")
    for var in ("PHOENIX_ADMIN_TOKEN", "PHOENIX_ENROLLMENT_TOKEN"):
        if "secretKeyRef" not in (env.get(var, {}).get("valueFrom") or {}):
            errors.append(f"{var} must come from a Secret")
    if port_number(c, "http") != listen_port(env.get("PHOENIX_LISTEN", {}).get("value", ":0")):
        errors.append("the server's container port `http` differs from PHOENIX_LISTEN")
    ns, labels = w["metadata"]["namespace"], pod_labels(w)

    services = [s for s in docs(d, "Service") if s["metadata"]["namespace"] == ns
                and selects({"matchLabels": s["spec"].get("selector")}, labels)]
    if not services:
        errors.append("no Service selects the server's pods")
    for s in services:
        for p in s["spec"].get("ports") or []:
            if port_number(c, p.get("targetPort")) is None:
                errors.append(f"Service/{s['metadata']['name']}: targetPort {p.get('targetPort')} is not a container port")

    hpas = [h for h in docs(d, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"].get("kind") == "Deployment"
            and h["spec"]["scaleTargetRef"].get("name") == w["metadata"]["name"]]
    if len(hpas) != 1 or hpas[0]["apiVersion"] != "autoscaling/v2":
        errors.append("the server needs one autoscaling/v2 HorizontalPodAutoscaler")
    else:
        spec = hpas[0]["spec"]
        if not any((m.get("resource") or {}).get("name") == "cpu" for m in spec.get("metrics") or []):
            errors.append("the HPA does not scale on CPU")
        if (spec.get("minReplicas") or 1) < 2:
            errors.append("the HPA's minReplicas must be at least 2")
        pdbs = [p for p in docs(d, "PodDisruptionBudget")
                if p["metadata"]["namespace"] == ns and selects(p["spec"].get("selector"), labels)]
        if len(pdbs) != 1:
            errors.append("the server needs one PodDisruptionBudget selecting its pods")
        elif not 1 <= (pdbs[0]["spec"].get("minAvailable") or 0) < spec.get("minReplicas", 1):
            errors.append("the PDB's minAvailable must be at least 1 and below minReplicas")
    return errors


def check_agent(d: Deploy) -> list[str]:
    errors = []
    found = workloads(d, AGENT_IMAGE)
    if len(found) != 1:
        return [f"expected one workload running {AGENT_IMAGE}, found {len(found)}"]
    w, c = found[0]
    spec = pod_spec(w)
    if w["kind"] != "DaemonSet":
        errors.append("the agent must be a DaemonSet")
    if spec.get("hostPID") is not True:
        errors.append("the agent needs hostPID: true to see the node's processes")
    if spec.get("hostNetwork"):
        errors.append("the agent must not use the node's network")
    if not spec.get("tolerations"):
        errors.append("the agent DaemonSet has no tolerations")
    env = env_map(c)
    node = ((env.get("NODE_NAME", {}).get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
    if node != "spec.nodeName":
        errors.append("NODE_NAME must come from the downward API (spec.nodeName)")
    for var in ("PHOENIX_AGENT_HOST_NAME", "PHOENIX_AGENT_LABELS"):
        if "$(NODE_NAME)" not in env.get(var, {}).get("value", ""):
            errors.append(f"{var} must carry $(NODE_NAME)")
    if "secretKeyRef" not in (env.get("PHOENIX_AGENT_ENROLLMENT_TOKEN", {}).get("valueFrom") or {}):
        errors.append("PHOENIX_AGENT_ENROLLMENT_TOKEN must come from a Secret")
    listen = env.get("PHOENIX_AGENT_LISTEN", {}).get("value", "127.0.0.1:9460")
    if listen.startswith("127.") or port_number(c, "metrics") != listen_port(listen):
        errors.append("PHOENIX_AGENT_LISTEN must bind the pod's address on the `metrics` container port")
    state_dir = env.get("PHOENIX_AGENT_STATE_DIR", {}).get("value", "/var/lib/phoenix-agent")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []}
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    if "hostPath" not in volumes.get(mounts.get(state_dir), {}):
        errors.append("the agent's state directory must be a hostPath volume (the credential survives pods)")
    # The server URL names the server's Service and port.
    server = workloads(d, SERVER_IMAGE)
    url = env.get("PHOENIX_AGENT_SERVER", {}).get("value", "")
    m = re.fullmatch(r"https?://([a-z0-9-]+)\.([a-z0-9-]+)(?:\.svc(?:\.[a-z0-9.-]+)?)?:(\d+)", url)
    services = {(s["metadata"]["name"], s["metadata"]["namespace"]): s for s in docs(d, "Service")}
    svc = services.get((m.group(1), m.group(2))) if m else None
    if not svc or not server or not selects({"matchLabels": svc["spec"]["selector"]}, pod_labels(server[0][0])) \
            or int(m.group(3)) not in [p["port"] for p in svc["spec"]["ports"]]:
        errors.append(f"PHOENIX_AGENT_SERVER {url!r} is not the server's Service and port")
    return errors


def check_secrets(d: Deploy) -> list[str]:
    """Every secretKeyRef resolves; the repository holds placeholders only; tokens agree."""
    errors = []
    secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): {**(s.get("data") or {}), **(s.get("stringData") or {})}
               for s in docs(d, "Secret")}
    for kind in WORKLOAD_KINDS:
        for w in docs(d, kind):
            ns = w["metadata"]["namespace"]
            for c in pod_spec(w).get("containers") or []:
                for e in c.get("env") or []:
                    ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                    if ref and ref.get("key") not in secrets.get((ns, ref.get("name")), {}):
                        errors.append(f"{kind}/{w['metadata']['name']}: {e['name']} refers to missing {ns}/{ref.get('name')}:{ref.get('key')}")
    for (ns, name), values in secrets.items():
        for key, value in values.items():
            if "REPLACE-ME" not in str(value):
                errors.append(f"Secret {ns}/{name} key {key} holds a value, not a REPLACE-ME placeholder")
    tokens = {v.get("enrollment-token") for v in secrets.values() if "enrollment-token" in v}
    if len(tokens) != 1:
        errors.append("the enrollment-token placeholders of the server's and the agent's Secrets differ")
    return errors


def check_network_policies(d: Deploy) -> list[str]:
    errors = []
    server = workloads(d, SERVER_IMAGE)
    agent = workloads(d, AGENT_IMAGE)
    if not server or not agent:
        return ["network policies need the server and agent workloads"]
    (sw, sc), (aw, ac) = server[0], agent[0]
    s_ns, a_ns = sw["metadata"]["namespace"], aw["metadata"]["namespace"]
    s_labels, a_labels = pod_labels(sw), pod_labels(aw)
    s_port, a_port = port_number(sc, "http"), port_number(ac, "metrics")

    def policies(ns: str, labels: dict, direction: str) -> list[dict]:
        return [p for p in docs(d, "NetworkPolicy") if p["metadata"]["namespace"] == ns
                and selects(p["spec"].get("podSelector"), labels)
                and direction in (p["spec"].get("policyTypes") or ["Ingress"])]

    def ports(rule: dict) -> set:
        return {p.get("port") for p in rule.get("ports") or []}

    egress = policies(a_ns, a_labels, "Egress")
    if not egress:
        errors.append("no NetworkPolicy restricts the agents' egress")
    reaches_server = False
    for p in egress:
        for rule in p["spec"].get("egress") or []:
            peers = rule.get("to") or []
            if not peers:
                errors.append(f"NetworkPolicy/{p['metadata']['name']}: an egress rule allows every destination")
            for peer in peers:
                if "ipBlock" in peer:
                    errors.append(f"NetworkPolicy/{p['metadata']['name']}: agents may not egress to an ipBlock")
                    continue
                to_server = selects(peer.get("namespaceSelector"), namespace_labels(d, s_ns)) \
                    and selects(peer.get("podSelector"), s_labels)
                if to_server and ports(rule) == {s_port}:
                    reaches_server = True
                elif not (ports(rule) == {53} and peer.get("namespaceSelector") is not None):
                    errors.append(f"NetworkPolicy/{p['metadata']['name']}: agents may egress only to the server port or DNS")
    if egress and not reaches_server:
        errors.append(f"no NetworkPolicy lets agents reach the server's pods on port {s_port}")

    ingress = policies(a_ns, a_labels, "Ingress")
    if not ingress:
        errors.append("no NetworkPolicy restricts ingress to the agents")
    for p in ingress:
        for rule in p["spec"].get("ingress") or []:
            if not rule.get("from") or ports(rule) != {a_port}:
                errors.append(f"NetworkPolicy/{p['metadata']['name']}: agents accept ingress only from named peers on port {a_port}")

    s_ingress = policies(s_ns, s_labels, "Ingress")
    if not any(s_port in ports(r) for p in s_ingress for r in p["spec"].get("ingress") or []):
        errors.append(f"no NetworkPolicy admits the server's port {s_port}")
    for p in s_ingress:
        for rule in p["spec"].get("ingress") or []:
            if ports(rule) - {s_port} or not ports(rule):
                errors.append(f"NetworkPolicy/{p['metadata']['name']}: the server admits only its port {s_port}")
    return errors


def check_compose(d: Deploy) -> list[str]:
    errors = []
    services = d.compose.get("services") or {}
    missing = {"server", "agent", "postgres", "redis", "prometheus"} - set(services)
    if missing:
        return [f"compose: missing services {sorted(missing)}"]
    for name, svc in services.items():
        if not (svc.get("healthcheck") or {}).get("test"):
            errors.append(f"compose {name}: no healthcheck")
        for dep, cond in (svc.get("depends_on") or {}).items():
            if (cond or {}).get("condition") != "service_healthy":
                errors.append(f"compose {name}: depends_on {dep} must wait for service_healthy")
        for port in svc.get("ports") or []:
            if not str(port).startswith("127.0.0.1:"):
                errors.append(f"compose {name}: port {port} must be published on 127.0.0.1 only")
        build = svc.get("build")
        if build and not (d.root / "deploy" / build["context"] / build["dockerfile"]).is_file():
            errors.append(f"compose {name}: {build['dockerfile']} does not exist")
    server, agent = services["server"], services["agent"]
    s_env = {k: expand(str(v)) for k, v in (server.get("environment") or {}).items()}
    a_env = {k: expand(str(v)) for k, v in (agent.get("environment") or {}).items()}
    if not s_env.get("PHOENIX_STORE", "").startswith("postgres://") or "@postgres:" not in s_env["PHOENIX_STORE"]:
        errors.append("compose server: PHOENIX_STORE must default to the postgres service")
    if set(server.get("depends_on") or {}) != {"postgres", "redis"}:
        errors.append("compose server: must depend on postgres and redis")
    if agent.get("pid") != "host":
        errors.append("compose agent: needs pid: host to see the host's processes")
    if s_env.get("PHOENIX_ENROLLMENT_TOKEN") != a_env.get("PHOENIX_AGENT_ENROLLMENT_TOKEN"):
        errors.append("compose: the server's and the agent's enrollment tokens differ")
    for var in ("PHOENIX_ADMIN_TOKEN", "PHOENIX_ENROLLMENT_TOKEN"):
        if len(s_env.get(var, "")) < 16:
            errors.append(f"compose server: the default {var} is shorter than the server's 16 characters")
    if a_env.get("PHOENIX_AGENT_SERVER") != f"http://server:{listen_port(s_env.get('PHOENIX_LISTEN', ':8080'))}":
        errors.append("compose agent: PHOENIX_AGENT_SERVER must be the server service on its listen port")
    if a_env.get("PHOENIX_AGENT_LISTEN", "127.0.0.1").startswith("127."):
        errors.append("compose agent: the listener must bind beyond loopback for Prometheus")
    return errors


def check_prometheus(d: Deploy) -> list[str]:
    errors = []
    services = d.compose.get("services") or {}
    a_env = {k: expand(str(v)) for k, v in ((services.get("agent") or {}).get("environment") or {}).items()}
    s_env = {k: expand(str(v)) for k, v in ((services.get("server") or {}).get("environment") or {}).items()}
    agent = f"agent:{listen_port(a_env.get('PHOENIX_AGENT_LISTEN', ':9460'))}"
    server = f"server:{listen_port(s_env.get('PHOENIX_LISTEN', ':8080'))}"
    scraped = set()
    for job in d.prometheus.get("scrape_configs") or []:
        path = job.get("metrics_path", "/metrics")
        targets = {t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []}
        for t in targets:
            routes = {agent: d.agent_paths, server: d.server_paths}.get(t)
            if routes is None:
                errors.append(f"prometheus job {job.get('job_name')}: target {t} is neither {agent} nor {server}")
            elif path not in routes:
                errors.append(f"prometheus job {job.get('job_name')}: {path} is not a route of {t}")
            else:
                scraped.add((t, path))
    for want in ((agent, "/metrics/baseline"), (agent, "/metrics/candidate"), (server, "/metrics")):
        if want not in scraped:
            errors.append(f"prometheus does not scrape {want[1]} on {want[0]}")
    return errors


def check_dockerfiles(d: Deploy) -> list[str]:
    errors = []
    for binary in (SERVER_IMAGE, AGENT_IMAGE):
        file = f"{binary.split('-', 1)[1]}.Dockerfile"
        text = d.dockerfiles.get(file)
        if text is None:
            errors.append(f"deploy/docker/{file} is missing")
            continue
        stages = re.split(r"^FROM\s", text, flags=re.M)[1:]
        if len(stages) < 2 or not re.match(r"\S+ AS builder", stages[0]):
            errors.append(f"{file}: needs a builder stage and a runtime stage")
            continue
        builder, final = stages[0], stages[-1]
        if "--mount=type=cache" not in builder or f"-p {binary}" not in builder or "--locked" not in builder:
            errors.append(f"{file}: the builder must `cargo build --locked -p {binary}` with cache mounts")
        if not final.startswith("debian:") or "-slim" not in final.split()[0]:
            errors.append(f"{file}: the runtime stage must be Debian slim")
        users = re.findall(r"^USER\s+(\S+)", final, re.M)
        if not users or users[-1].split(":")[0] in ("root", "0"):
            errors.append(f"{file}: the runtime stage must end as a non-root USER")
        copies = re.findall(r"^COPY\s+(.*)$", final, re.M)
        if copies != [f"--from=builder /out/{binary} /usr/local/bin/{binary}"]:
            errors.append(f"{file}: the runtime stage must copy exactly the binary from the builder")
        if "org.opencontainers.image.title" not in final:
            errors.append(f"{file}: no OCI labels")
        health = re.search(r"^HEALTHCHECK\s.*?GET (/\S+) HTTP", final, re.M | re.S)
        if binary == SERVER_IMAGE and (not health or health.group(1) not in d.server_paths):
            errors.append(f"{file}: needs a HEALTHCHECK on a server route")
    return errors


CHECKS: list[Callable[[Deploy], list[str]]] = [
    check_kustomization, check_metadata, check_workloads, check_env_names, check_server,
    check_agent, check_secrets, check_network_policies, check_compose, check_prometheus,
    check_dockerfiles,
]


def run(d: Deploy) -> list[str]:
    errors = []
    for check in CHECKS:
        try:
            errors += [f"{check.__name__}: {e}" for e in check(d)]
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as e:
            errors.append(f"{check.__name__}: malformed input ({type(e).__name__}: {e})")
    return errors


# --- self-test: every mutation must be caught -----------------------------------------

def _container(d: Deploy, image: str) -> dict:
    return workloads(d, image)[0][1]


def _pod(d: Deploy, image: str) -> dict:
    return pod_spec(workloads(d, image)[0][0])


def _set_env(c: dict, name: str, value: str) -> None:
    for e in c["env"]:
        if e["name"] == name:
            e.clear()
            e.update(name=name, value=value)


MUTATIONS: dict[str, Callable[[Deploy], None]] = {
    "agent without hostPID": lambda d: _pod(d, AGENT_IMAGE).pop("hostPID"),
    "server without readiness probe": lambda d: _container(d, SERVER_IMAGE).pop("readinessProbe"),
    "readiness on a route that does not exist": lambda d: _container(d, SERVER_IMAGE)["readinessProbe"]["httpGet"].update(path="/ready"),
    "agent without limits": lambda d: _container(d, AGENT_IMAGE)["resources"].pop("limits"),
    "init container without resources": lambda d: _pod(d, AGENT_IMAGE)["initContainers"][0].pop("resources"),
    "server writable root filesystem": lambda d: _container(d, SERVER_IMAGE)["securityContext"].update(readOnlyRootFilesystem=False),
    "misspelt agent variable": lambda d: _container(d, AGENT_IMAGE)["env"].append({"name": "PHOENIX_AGENT_LISTN", "value": "x"}),
    "agent listener on loopback": lambda d: _set_env(_container(d, AGENT_IMAGE), "PHOENIX_AGENT_LISTEN", "127.0.0.1:9460"),
    "agent host name not from the node": lambda d: _set_env(_container(d, AGENT_IMAGE), "PHOENIX_AGENT_HOST_NAME", "agent"),
    "agent pointed at a wrong service": lambda d: _set_env(_container(d, AGENT_IMAGE), "PHOENIX_AGENT_SERVER", "http://phoenix.phoenix.svc:8080"),
    "secret key missing": lambda d: one(d, "Secret", "phoenix-server")["stringData"].pop("store-url"),
    "real value committed in a Secret": lambda d: one(d, "Secret", "phoenix-agent")["stringData"].update({"enrollment-token": "a-real-looking-token-0123456789"}),
    "agent egress open to everything": lambda d: one(d, "NetworkPolicy", "phoenix-agent-egress")["spec"]["egress"].append({}),
    "agent egress to the wrong pods": lambda d: one(d, "NetworkPolicy", "phoenix-agent-egress")["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"].update({"app.kubernetes.io/name": "other"}),
    "agent ingress from anywhere": lambda d: one(d, "NetworkPolicy", "phoenix-agent-allow-prometheus")["spec"]["ingress"][0].pop("from"),
    "no default deny for agents": lambda d: d.k8s.__setitem__(slice(None), [(f, x) for f, x in d.k8s if x["metadata"]["name"] not in ("default-deny", "phoenix-agent-allow-prometheus")]),
    "server policy on the wrong port": lambda d: one(d, "NetworkPolicy", "phoenix-server-ingress")["spec"]["ingress"][0]["ports"][0].update(port=8081),
    "PDB selecting nothing": lambda d: one(d, "PodDisruptionBudget", "phoenix-server")["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "x"}),
    "HPA on memory only": lambda d: one(d, "HorizontalPodAutoscaler", "phoenix-server")["spec"]["metrics"][0]["resource"].update(name="memory"),
    "one replica": lambda d: workloads(d, SERVER_IMAGE)[0][0]["spec"].update(replicas=1),
    "file left out of kustomization": lambda d: d.kustomization["resources"].remove("server-pdb.yaml"),
    "compose agent without pid: host": lambda d: d.compose["services"]["agent"].pop("pid"),
    "compose ordering without health": lambda d: d.compose["services"]["agent"]["depends_on"]["server"].update(condition="service_started"),
    "compose tokens differ": lambda d: d.compose["services"]["agent"]["environment"].update(PHOENIX_AGENT_ENROLLMENT_TOKEN="${T:-another-token-of-enough-length}"),
    "compose port published on every interface": lambda d: d.compose["services"]["server"]["ports"].__setitem__(0, "8080:8080"),
    "prometheus path misspelt": lambda d: next(j for j in d.prometheus["scrape_configs"] if j["metrics_path"] == "/metrics/candidate").update(metrics_path="/metrics/candidat"),
    "Dockerfile running as root": lambda d: d.dockerfiles.update({"agent.Dockerfile": d.dockerfiles["agent.Dockerfile"].replace("USER 10001:10001", "USER root")}),
    "Dockerfile without cache mounts": lambda d: d.dockerfiles.update({"server.Dockerfile": d.dockerfiles["server.Dockerfile"].replace("--mount=type=cache", "--mount=type=bind")}),
    "Dockerfile copying more than the binary": lambda d: d.dockerfiles.update({"server.Dockerfile": d.dockerfiles["server.Dockerfile"].replace("ENTRYPOINT", "COPY . /src\nENTRYPOINT")}),
}


def self_test(d: Deploy) -> list[str]:
    failures = []
    for name, mutate in MUTATIONS.items():
        broken = copy.deepcopy(d)
        mutate(broken)
        if not run(broken):
            failures.append(f"self-test: the checks did not notice: {name}")
    return failures


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--self-test"]
    root = Path(args[0] if args else ".").resolve()
    d = load(root)
    errors = run(d)
    for e in errors:
        print(f"  FAIL {e}")
    print(f"manifest checks: {len(CHECKS) - len({e.split(':')[0] for e in errors})} of {len(CHECKS)} clean")
    if "--self-test" in argv:
        failures = self_test(d)
        for f in failures:
            print(f"  FAIL {f}")
        print(f"self-test: {len(MUTATIONS) - len(failures)} of {len(MUTATIONS)} broken copies caught")
        errors += failures
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

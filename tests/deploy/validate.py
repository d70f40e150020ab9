"""Offline checks of deploy/: the Helm chart, the rendered manifests, the
CRDs, the cleanup DaemonSet, the examples and the image recipe.

    python3 tests/deploy/validate.py            run every check; exit 1 if one fails
    python3 tests/deploy/validate.py --render   rewrite deploy/manifests/porin.yaml
                                                and the chart's CRD copies

What is checked, and with what:

* Every YAML file parses; the chart's CRD copies equal deploy/crds/.
* helm (the real v4 binary, see tools.py) lints the chart with the default
  values and with every feature on, rejects values its schema forbids, and
  renders exactly deploy/manifests/porin.yaml.
* kubectl kustomize builds every kustomization in deploy/.
* kubernetes-validate checks every built-in object (DaemonSet, RBAC,
  Service, CRDs, ...) against the OpenAPI schemas of the oldest and newest
  Kubernetes versions porin supports, strictly (no unknown fields).
* Each CRD's schema is structural (what the API server requires), its
  defaults are valid, and every CEL rule has an offline twin here; custom
  objects (deploy/examples, the chart's FilterModules, the seed's and the
  lab's Cilium policies) validate against the CRDs' schemas, and objects
  in tests/deploy/rejected/ must not.
* The contract the agent was written for: RBAC grants exactly the verbs on
  exactly the resources listed in ALLOWED_RULES (no wildcards); the agent
  container is not privileged and adds exactly AGENT_CAPABILITIES; probes
  are /healthz and /readyz on the API port; the mounts, flags and
  downward-API variables are there; the Service and the ServiceMonitor
  select the agent; the cleanup DaemonSet uses the agent's image and pin
  directory.
* The image recipe builds the Rust release of rust-toolchain.toml and puts
  the binary where the DaemonSet runs it.
"""

import argparse
import copy
import difflib
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tools  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "porin"
RENDERED = DEPLOY / "manifests" / "porin.yaml"
REJECTED = Path(__file__).resolve().parent / "rejected"
ALL_FEATURES = Path(__file__).resolve().parent / "values-all-features.yaml"

# How deploy/manifests/porin.yaml is made from the chart.
RELEASE, NAMESPACE = "porin", "porin"
RENDER_ARGS = ["--namespace", NAMESPACE, "--include-crds", "--set", "createNamespace=true"]

KUSTOMIZATIONS = ["manifests", "crds", "crds/cilium", "cleanup"]

# The oldest Kubernetes porin supports (Chart.yaml's kubeVersion) and the
# newest whose schemas kubernetes-validate bundles.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]

# (API group, resource) -> verbs. Anything else in a ClusterRole or Role fails.
ALLOWED_RULES = {
    "ClusterRole": {
        ("", "namespaces"): {"list", "watch"},
        ("", "pods"): {"list", "watch"},
        ("", "services"): {"list", "watch"},
        ("discovery.k8s.io", "endpointslices"): {"list", "watch"},
        ("networking.k8s.io", "networkpolicies"): {"list", "watch"},
        ("cilium.io", "ciliumnetworkpolicies"): {"list", "watch"},
        ("cilium.io", "ciliumclusterwidenetworkpolicies"): {"list", "watch"},
        ("porin.dev", "filtermodules"): {"list", "watch"},
        ("porin.dev", "filtermodules/status"): {"patch"},
        ("events.k8s.io", "events"): {"create", "patch"},
        ("", "events"): {"create", "patch"},
    },
    "Role": {
        ("", "configmaps"): {"get", "list", "watch"},
    },
}
AGENT_CAPABILITIES = {"NET_ADMIN", "BPF", "PERFMON", "SYS_RESOURCE"}
AGENT_BINARY = "/usr/local/bin/porin"
PIN_DIR = "/sys/fs/bpf/porin"
CGROUP_ROOT = "/run/porin/cgroupv2"
# Flags the agent must get, as the DaemonSet passes them.
AGENT_FLAGS = [
    "--kubernetes",
    "--node-name=$(NODE_NAME)",
    "--api=unix:/var/run/porin/porin.sock",
    f"--cgroup-root={CGROUP_ROOT}",
    f"--pin-dir={PIN_DIR}",
]
# mount path -> (host path, read-only)
AGENT_MOUNTS = {
    "/sys/fs/bpf": ("/sys/fs/bpf", False),
    CGROUP_ROOT: ("/sys/fs/cgroup", True),
    "/var/run/porin": ("/var/run/porin", False),
}


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def ok(self, what):
        self.passed += 1
        print(f"ok: {what}")

    def fail(self, what, why):
        self.failed.append(what)
        print(f"FAIL: {what}\n    " + str(why).replace("\n", "\n    "))

    def check(self, what, problems):
        """Passes `what` when `problems` (a list of strings) is empty."""
        problems = list(problems)
        if problems:
            self.fail(what, "\n".join(problems))
        else:
            self.ok(what)


def run(args):
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def load_all(text):
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def name_of(obj):
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


def yaml_files(root):
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


# ---------------------------------------------------------------- helm

def helm(*args):
    return run([str(tools.tool("helm")), *args])


def render(*extra):
    result = helm("template", RELEASE, str(CHART), *RENDER_ARGS, *extra)
    if result.returncode != 0:
        raise RuntimeError(f"helm template failed:\n{result.stderr}")
    return result.stdout


def copy_crds():
    """The chart carries copies of deploy/crds: Helm reads only its own directory."""
    pairs = [(DEPLOY / "crds" / "porin.dev_filtermodules.yaml", CHART / "crds" / "porin.dev_filtermodules.yaml")]
    for crd in sorted((DEPLOY / "crds" / "cilium").glob("cilium.io_*.yaml")):
        pairs.append((crd, CHART / "files" / "cilium" / crd.name))
    return pairs


def write_rendered():
    for source, copy_ in copy_crds():
        copy_.write_bytes(source.read_bytes())
    header = ("# Generated from deploy/helm/porin by `make deploy-manifests`: do not edit.\n"
              f"# helm template {RELEASE} deploy/helm/porin {' '.join(RENDER_ARGS)}\n")
    RENDERED.write_text(header + render())
    print(f"wrote {RENDERED.relative_to(REPO)}")


# ------------------------------------------------- CRD schemas, offline

def quantity_bytes(text):
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", text)
    if not match:
        return None
    scale = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
             "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}[match.group(2)]
    return float(match.group(1)) * scale


def has(obj, key):
    return isinstance(obj, dict) and key in obj


BUILTIN_FILTERS = ["http", "dns", "kafka"]

# Every CEL rule of deploy/crds, with a Python twin: a CEL rule without one
# fails the checks, so the offline validation cannot silently skip a rule.
CEL_RULES = {
    "has(self.spec.filterName) || self.metadata.name.matches('^[a-z][a-z0-9-]{0,62}$')":
        lambda s: has(s["spec"], "filterName") or re.search(r"^[a-z][a-z0-9-]{0,62}$", s["metadata"]["name"]),
    "has(self.spec.filterName) || !(self.metadata.name in ['http', 'dns', 'kafka'])":
        lambda s: has(s["spec"], "filterName") or s["metadata"]["name"] not in BUILTIN_FILTERS,
    "!(self in ['http', 'dns', 'kafka'])":
        lambda s: s not in BUILTIN_FILTERS,
    "has(self.configMap) != has(self.url)":
        lambda s: has(s, "configMap") != has(s, "url"),
    "!has(self.url) || has(self.sha256)":
        lambda s: not has(s, "url") or has(s, "sha256"),
    "isQuantity(self) && quantity(self).compareTo(quantity('1Gi')) <= 0":
        lambda s: quantity_bytes(s) is not None and quantity_bytes(s) <= 2**30,
}

JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
# What the API server forbids inside allOf/anyOf/oneOf/not of a structural schema.
NOT_IN_JUNCTORS = ("type", "description", "default", "nullable", "additionalProperties",
                   "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
                   "x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-map-type")


def structural_problems(schema, path="openAPIV3Schema", in_junctor=False):
    """The rules of a structural schema (Kubernetes' "Specifying a structural schema")."""
    problems = []
    if not isinstance(schema, dict):
        return [f"{path}: not a schema"]
    int_or_string = schema.get("x-kubernetes-int-or-string")
    if in_junctor:
        for key in NOT_IN_JUNCTORS:
            if key in schema:
                problems.append(f"{path}: `{key}` is not allowed inside allOf/anyOf/oneOf/not")
    elif "type" not in schema and not int_or_string and not schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path}: no `type`")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: `properties` and `additionalProperties` are mutually exclusive")
    for rule in schema.get("x-kubernetes-validations", []):
        if rule.get("rule") not in CEL_RULES:
            problems.append(f"{path}: CEL rule without an offline twin in validate.py: {rule.get('rule')}")
    for key, sub in (schema.get("properties") or {}).items():
        problems += structural_problems(sub, f"{path}.properties.{key}", in_junctor)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            problems += structural_problems(schema[key], f"{path}.{key}", in_junctor)
    for junctor in JUNCTORS:
        subs = schema.get(junctor)
        for i, sub in enumerate(subs if isinstance(subs, list) else [subs] if subs else []):
            # int-or-string's anyOf [{type: integer}, {type: string}] is the one exception.
            if int_or_string and junctor == "anyOf":
                continue
            problems += structural_problems(sub, f"{path}.{junctor}[{i}]", True)
    return problems


def to_json_schema(schema):
    """A CRD schema as JSON Schema, closer to what the API server enforces:
    unknown fields are errors (kubectl's strict field validation) unless the
    schema preserves them, int-or-string takes both."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if node.get("x-kubernetes-int-or-string"):
            node.pop("type", None)
            node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
        if node.get("nullable") and "type" in node:
            node["type"] = [node["type"], "null"]
        if (node.get("type") == "object" and "properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for sub in (node.get("properties") or {}).values():
            walk(sub)
        for key in ("items", "additionalProperties", "not"):
            walk(node.get(key))
        for junctor in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(junctor) or []:
                walk(sub)

    walk(schema)
    # ObjectMeta is the API server's: a name at least.
    schema["properties"]["metadata"] = {"type": "object", "required": ["name"]}
    return schema


def cel_problems(schema, value, path):
    """Evaluates the CEL rules' twins where `value` has the node."""
    problems = []
    if not isinstance(schema, dict):
        return problems
    for rule in schema.get("x-kubernetes-validations", []):
        twin = CEL_RULES.get(rule["rule"])
        if twin is not None and not twin(value):
            problems.append(f"{path}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                problems += cel_problems(sub, value[key], f"{path}.{key}")
        if isinstance(schema.get("additionalProperties"), dict):
            for key, sub in value.items():
                problems += cel_problems(schema["additionalProperties"], sub, f"{path}.{key}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, sub in enumerate(value):
            problems += cel_problems(schema["items"], sub, f"{path}[{i}]")
    return problems


def default_problems(schema, path="openAPIV3Schema"):
    """Every default must satisfy the schema it sits in."""
    problems = []
    if not isinstance(schema, dict):
        return problems
    if "default" in schema:
        bare = {k: v for k, v in schema.items() if k != "default"}
        problems += [f"{path}: default {schema['default']!r}: {e.message}"
                     for e in jsonschema.Draft7Validator(to_json_schema_node(bare)).iter_errors(schema["default"])]
        problems += cel_problems(schema, schema["default"], f"{path}.default")
    for key, sub in (schema.get("properties") or {}).items():
        problems += default_problems(sub, f"{path}.properties.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            problems += default_problems(schema[key], f"{path}.{key}")
    return problems


def to_json_schema_node(node):
    wrapped = to_json_schema({"type": "object", "properties": {"metadata": {}, "x": node}})
    return wrapped["properties"]["x"]


class CustomResources:
    """The CRDs of deploy/crds, to validate custom objects against."""

    def __init__(self, crds):
        self.kinds = {}
        for crd in crds:
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                schema = version["schema"]["openAPIV3Schema"]
                self.kinds[key] = (spec["scope"], schema, jsonschema.Draft7Validator(
                    to_json_schema(schema), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER))

    def knows(self, obj):
        return (obj.get("apiVersion"), obj.get("kind")) in self.kinds

    def problems(self, obj):
        scope, schema, validator = self.kinds[(obj["apiVersion"], obj["kind"])]
        problems = []
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in error.absolute_path) or "(root)"
            problems.append(f"{where}: {error.message}")
        namespaced = "namespace" in (obj.get("metadata") or {})
        if scope == "Namespaced" and not namespaced:
            problems.append("metadata.namespace: a namespaced kind needs a namespace")
        if scope == "Cluster" and namespaced:
            problems.append("metadata.namespace: the kind is cluster-scoped")
        if not problems:
            problems += cel_problems(schema, obj, "(root)")
        return problems


# -------------------------------------------------- the agent's contract

def rbac_problems(objects):
    problems = []
    roles = {(o["kind"], o["metadata"]["name"]): o for o in objects if o["kind"] in ("ClusterRole", "Role")}
    accounts = {(o["metadata"].get("namespace"), o["metadata"]["name"])
                for o in objects if o["kind"] == "ServiceAccount"}
    if {kind for kind, _ in roles} != {"ClusterRole", "Role"}:
        problems.append(f"expected one ClusterRole and one Role, found {sorted(roles)}")
    for (kind, name), role in roles.items():
        granted = {}
        for rule in role.get("rules", []):
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                if "*" in rule.get(field, []):
                    problems.append(f"{kind} {name}: wildcard in {field}: {rule}")
            if rule.get("nonResourceURLs"):
                problems.append(f"{kind} {name}: nonResourceURLs are not needed: {rule}")
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    granted.setdefault((group, resource), set()).update(rule.get("verbs", []))
        allowed = ALLOWED_RULES.get(kind, {})
        for key, verbs in sorted(granted.items()):
            extra = verbs - allowed.get(key, set())
            if extra:
                problems.append(f"{kind} {name}: {sorted(extra)} on {key[0] or 'core'}/{key[1]} is beyond the contract")
        for key, verbs in sorted(allowed.items()):
            missing = verbs - granted.get(key, set())
            if missing:
                problems.append(f"{kind} {name}: the agent needs {sorted(missing)} on {key[0] or 'core'}/{key[1]}")
        if kind == "Role" and role["metadata"].get("namespace") != NAMESPACE:
            problems.append(f"Role {name} must be in porin's namespace {NAMESPACE}")
    for binding in (o for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        ref = binding["roleRef"]
        expected = "ClusterRole" if binding["kind"] == "ClusterRoleBinding" else "Role"
        if ref["kind"] != expected or (ref["kind"], ref["name"]) not in roles:
            problems.append(f"{name_of(binding)}: roleRef {ref} is not the {expected} rendered beside it")
        for subject in binding.get("subjects", []):
            if subject.get("kind") != "ServiceAccount" or (subject.get("namespace"), subject["name"]) not in accounts:
                problems.append(f"{name_of(binding)}: subject {subject} is not the agent's ServiceAccount")
    return problems


def pod_volume_problems(what, pod):
    """Mounts name volumes that exist; Bidirectional only for privileged containers (API server rule)."""
    problems = []
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for container in pod.get("initContainers", []) + pod.get("containers", []):
        privileged = (container.get("securityContext") or {}).get("privileged", False)
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                problems.append(f"{what}: container {container['name']} mounts unknown volume {mount['name']}")
            if mount.get("mountPropagation") == "Bidirectional" and not privileged:
                problems.append(f"{what}: Bidirectional propagation in unprivileged container {container['name']} "
                                "(the API server rejects it)")
    return problems


def container_caps_problems(what, container, expected):
    problems = []
    security = container.get("securityContext") or {}
    if security.get("privileged") is not False:
        problems.append(f"{what}: container {container['name']} must set privileged: false")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{what}: container {container['name']} must set allowPrivilegeEscalation: false")
    caps = security.get("capabilities") or {}
    if caps.get("drop") != ["ALL"]:
        problems.append(f"{what}: container {container['name']} must drop ALL capabilities")
    added = set(caps.get("add", []))
    if added != expected:
        problems.append(f"{what}: container {container['name']} adds {sorted(added)}, expected exactly {sorted(expected)}")
    return problems


def daemonset_problems(objects):
    problems = []
    sets = [o for o in objects if o["kind"] == "DaemonSet"]
    if len(sets) != 1:
        return [f"expected one DaemonSet, found {len(sets)}"]
    ds = sets[0]
    what = name_of(ds)
    pod = ds["spec"]["template"]["spec"]
    labels = ds["spec"]["template"]["metadata"]["labels"]
    selector = ds["spec"]["selector"]["matchLabels"]
    if any(labels.get(k) != v for k, v in selector.items()):
        problems.append(f"{what}: the selector {selector} does not select its own pods {labels}")
    if pod.get("hostNetwork") is not True:
        problems.append(f"{what}: needs hostNetwork: true")
    if pod.get("hostPID") or pod.get("hostIPC"):
        problems.append(f"{what}: must not share the host's PID or IPC namespace")
    if pod.get("initContainers"):
        problems.append(f"{what}: unexpected init containers (none needs SYS_ADMIN: cgroup2 is a hostPath)")
    accounts = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects if o["kind"] == "ServiceAccount"}
    if (ds["metadata"].get("namespace"), pod.get("serviceAccountName")) not in accounts:
        problems.append(f"{what}: serviceAccountName {pod.get('serviceAccountName')} is not rendered")
    if not any(t.get("operator") == "Exists" and "key" not in t for t in pod.get("tolerations", [])):
        problems.append(f"{what}: must tolerate every taint by default, like a CNI agent")
    strategy = ds["spec"].get("updateStrategy", {})
    if strategy.get("type") != "RollingUpdate" or strategy.get("rollingUpdate", {}).get("maxUnavailable") != 1:
        problems.append(f"{what}: updateStrategy must be RollingUpdate with maxUnavailable 1")
    agents = [c for c in pod["containers"] if c["name"] == "agent"]
    if len(pod["containers"]) != 1 or not agents:
        return problems + [f"{what}: expected exactly one container, `agent`"]
    agent = agents[0]
    problems += container_caps_problems(what, agent, AGENT_CAPABILITIES)
    command = agent.get("command", []) + agent.get("args", [])
    if command[:2] != [AGENT_BINARY, "agent"]:
        problems.append(f"{what}: runs {command[:2]}, expected {AGENT_BINARY} agent")
    for flag in AGENT_FLAGS:
        if flag not in command:
            problems.append(f"{what}: missing flag {flag}")
    for prefix, pattern in (("--flow-buffer=", r"[0-9]+"), ("--policy-enforcement=", r"default|always|never")):
        values = [a[len(prefix):] for a in command if a.startswith(prefix)]
        if len(values) != 1 or not re.fullmatch(pattern, values[0]):
            problems.append(f"{what}: expected one {prefix}{pattern}, found {values}")
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in agent.get("env", [])}
    for name, field in (("NODE_NAME", "spec.nodeName"), ("POD_NAMESPACE", "metadata.namespace")):
        if env.get(name) != field:
            problems.append(f"{what}: {name} must come from the downward API ({field})")
    ports = {p["name"]: p["containerPort"] for p in agent.get("ports", [])}
    tcp_apis = [a.split("=", 1)[1] for a in command if a.startswith("--api=") and not a.startswith("--api=unix:")]
    if [f"0.0.0.0:{ports.get('api')}"] != tcp_apis:
        problems.append(f"{what}: the `api` port {ports.get('api')} is not the --api TCP address {tcp_apis}")
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (agent.get(probe) or {}).get("httpGet") or {}
        if get.get("path") != path or get.get("port") not in ("api", ports.get("api")):
            problems.append(f"{what}: {probe} must GET {path} on the api port, has {get}")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in agent.get("volumeMounts", [])}
    for path, (host, read_only) in AGENT_MOUNTS.items():
        mount = mounts.get(path)
        source = volumes.get(mount["name"], {}).get("hostPath", {}).get("path") if mount else None
        if source != host:
            problems.append(f"{what}: {path} must be the node's {host} (hostPath), is {source}")
        elif bool(mount.get("readOnly")) != read_only:
            problems.append(f"{what}: {path} must be {'read-only' if read_only else 'writable'}")
    problems += pod_volume_problems(what, pod)
    return problems


def service_problems(objects):
    problems = []
    ds = next(o for o in objects if o["kind"] == "DaemonSet")
    pod_labels = ds["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"] for c in ds["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    services = [o for o in objects if o["kind"] == "Service"]
    for service in services:
        selector = service["spec"].get("selector", {})
        if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
            problems.append(f"{name_of(service)}: selector {selector} does not select the agent's pods")
        for port in service["spec"]["ports"]:
            if port.get("targetPort") not in port_names:
                problems.append(f"{name_of(service)}: targetPort {port.get('targetPort')} is not a container port")
    for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if all(s["metadata"]["labels"].get(k) == v for k, v in selector.items())]
        if len(matched) != 1:
            problems.append(f"{name_of(monitor)}: selects {len(matched)} Services, expected the agent's")
            continue
        service_ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            if endpoint.get("port") not in service_ports or endpoint.get("path") != "/metrics":
                problems.append(f"{name_of(monitor)}: endpoint {endpoint} must scrape /metrics on a Service port")
        if monitor["spec"].get("namespaceSelector", {}).get("matchNames") != [matched[0]["metadata"]["namespace"]]:
            problems.append(f"{name_of(monitor)}: namespaceSelector must name the Service's namespace")
    return problems


def cleanup_problems(cleanup, agent_objects):
    problems = []
    agent = next(o for o in agent_objects if o["kind"] == "DaemonSet")
    image = agent["spec"]["template"]["spec"]["containers"][0]["image"]
    sets = [o for o in cleanup if o["kind"] == "DaemonSet"]
    if len(sets) != 1:
        return [f"expected one cleanup DaemonSet, found {len(sets)}"]
    ds = sets[0]
    what = name_of(ds)
    pod = ds["spec"]["template"]["spec"]
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{what}: needs no API access (automountServiceAccountToken: false)")
    if not any(t.get("operator") == "Exists" and "key" not in t for t in pod.get("tolerations", [])):
        problems.append(f"{what}: must run on every node, tolerating every taint")
    uninstall = [c for c in pod.get("initContainers", [])
                 if c.get("command", []) + c.get("args", [])[:2] == [AGENT_BINARY, "agent", "uninstall"]]
    if len(uninstall) != 1:
        return problems + [f"{what}: expected one init container running `{AGENT_BINARY} agent uninstall`"]
    container = uninstall[0]
    if f"--pin-dir={PIN_DIR}" not in container.get("args", []):
        problems.append(f"{what}: must uninstall the agent's pin directory {PIN_DIR}")
    problems += container_caps_problems(what, container, AGENT_CAPABILITIES)
    for c in pod.get("initContainers", []) + pod["containers"]:
        if c["image"] != image:
            problems.append(f"{what}: container {c['name']} runs {c['image']}, the agent runs {image}")
    for c in pod["containers"]:
        if (c.get("securityContext") or {}).get("capabilities", {}).get("add"):
            problems.append(f"{what}: the idle container {c['name']} needs no capabilities")
    agent_pod = agent["spec"]["template"]["spec"]
    agent_mounts = {m["mountPath"]: m for m in agent_pod["containers"][0]["volumeMounts"]}
    agent_volumes = {v["name"]: v for v in agent_pod["volumes"]}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        mine = volumes.get(mount["name"], {}).get("hostPath")
        theirs = agent_volumes.get(agent_mounts.get(mount["mountPath"], {}).get("name"), {}).get("hostPath")
        if not mine or not theirs or mine["path"] != theirs["path"]:
            problems.append(f"{what}: {mount['mountPath']} is {mine}, the agent's is {theirs}")
    if "/sys/fs/bpf" not in {m["mountPath"] for m in container.get("volumeMounts", [])}:
        problems.append(f"{what}: the uninstall container needs the node's /sys/fs/bpf")
    problems += pod_volume_problems(what, pod)
    return problems


def image_problems():
    problems = []
    dockerfile = (DEPLOY / "image" / "Dockerfile").read_text()
    toolchain = re.search(r'channel\s*=\s*"([^"]+)"', (REPO / "rust-toolchain.toml").read_text()).group(1)
    rust = re.search(r"^ARG RUST_VERSION=(\S+)$", dockerfile, re.M)
    if not rust or rust.group(1) != toolchain:
        problems.append(f"Dockerfile: RUST_VERSION must be rust-toolchain.toml's {toolchain}")
    stages = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    if len(stages) != 2 or "${DEBIAN_RELEASE}" not in stages[0] or "${DEBIAN_RELEASE}" not in stages[1]:
        problems.append(f"Dockerfile: expected a builder and a runtime of the same Debian release, found {stages}")
    for needle, why in (("cargo build --release --locked -p porin", "build the agent"),
                        ("clang-19", "compile bpf/ (host/build.rs)"),
                        ("libbpf-dev", "the BPF headers"),
                        ("wasm32-unknown-unknown", "build the built-in filters"),
                        ("iproute2", "the agent runs `ip`"),
                        (f"COPY --from=builder /out/porin {AGENT_BINARY}", "the DaemonSet runs " + AGENT_BINARY)):
        if needle not in dockerfile:
            problems.append(f"Dockerfile: missing `{needle}` ({why})")
    # Sources the build embeds must not be left out of the build context.
    ignored = [line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#") and "*" not in line]
    for source in list((REPO / "host").rglob("*.rs")) + list((REPO / "filters").rglob("*.rs")):
        for included in re.findall(r'include_(?:str|bytes)!\("([^"]+)"\)', source.read_text()):
            target = (source.parent / included).resolve()
            if not target.is_relative_to(REPO):
                continue
            relative = target.relative_to(REPO).as_posix()
            for pattern in ignored:
                if relative == pattern or relative.startswith(pattern + "/"):
                    problems.append(f".dockerignore leaves out {relative}, which {source.relative_to(REPO)} embeds")
    return problems


# ---------------------------------------------------------------- main

def guarded(check, *args):
    """A check's problems; a check that crashes on a malformed object is a problem too."""
    try:
        return check(*args)
    except (KeyError, TypeError, AttributeError, IndexError, StopIteration) as err:
        return [f"{check.__name__} could not read the objects: {type(err).__name__}: {err}"]


def kubernetes_validate_problems(objects, version):
    problems = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.absolute_path) or "(root)"
            problems.append(f"{name_of(obj)}: {path}: {err.message}")
        except kubernetes_validate.utils.SchemaNotFoundError:
            problems.append(f"{name_of(obj)}: no schema for {obj['apiVersion']} {obj['kind']} in Kubernetes {version}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", action="store_true", help="regenerate deploy/manifests/porin.yaml and the chart's CRD copies")
    args = parser.parse_args()
    if args.render:
        write_rendered()
        return 0

    checks = Checks()

    # YAML parses (chart templates are Go templates: checked through helm below).
    parsed = {}
    for path in yaml_files(DEPLOY) + yaml_files(REJECTED) + [ALL_FEATURES]:
        if CHART / "templates" in path.parents:
            continue
        try:
            parsed[path] = load_all(path.read_text())
        except yaml.YAMLError as err:
            checks.fail(f"{path.relative_to(REPO)} parses", err)
    if checks.failed:
        return finish(checks)  # the checks below read these files
    checks.ok(f"{len(parsed)} YAML files parse")

    checks.check("the chart's CRDs are deploy/crds' (make deploy-manifests copies them)",
                 [f"{copy_.relative_to(REPO)} differs from {source.relative_to(REPO)}"
                  for source, copy_ in copy_crds() if not copy_.is_file() or copy_.read_bytes() != source.read_bytes()])

    # helm: lint, the values schema, the rendered manifests.
    for what, extra in (("default values", []), ("every feature on", ["-f", str(ALL_FEATURES)])):
        result = helm("lint", "--strict", str(CHART), *RENDER_ARGS[:2], *extra)
        checks.check(f"helm lint --strict ({what})", [] if result.returncode == 0 else [result.stdout + result.stderr])
    for bad in ("policyEnforcement=sometimes", "flowBuffer=0", "image.tag=1", "unknownValue=1",
                "filterModules[0].name=x", "filterModules[0].name=http,filterModules[0].filterName=http,"
                "filterModules[0].source.configMap.name=a,filterModules[0].source.configMap.key=b"):
        result = helm("template", RELEASE, str(CHART), *RENDER_ARGS, "--set", bad)
        checks.check(f"helm refuses --set {bad} (values.schema.json)",
                     [] if result.returncode != 0 else ["it rendered"])
    try:
        default_text = render()
        default = load_all(default_text)
        features = load_all(render("-f", str(ALL_FEATURES)))
    except RuntimeError as err:
        checks.fail("helm template renders the chart", err)
        return finish(checks)
    checks.ok("helm template renders the chart (default values and every feature on)")
    committed = RENDERED.read_text()
    committed_body = "".join(committed.splitlines(keepends=True)[2:])
    diff = list(difflib.unified_diff(committed_body.splitlines(), default_text.splitlines(),
                                     str(RENDERED.relative_to(REPO)), "helm template", lineterm="", n=1))
    checks.check("deploy/manifests/porin.yaml is the chart rendered (`make deploy-manifests` updates it)", diff[:40])
    if any(o["kind"] == "CustomResourceDefinition" and o["spec"]["group"] == "cilium.io" for o in default):
        checks.fail("Cilium's CRDs are not installed by default", "the default values render them")
    else:
        checks.ok("Cilium's CRDs are not installed by default")
    cilium_in_chart = sorted(o["metadata"]["name"] for o in features if o["kind"] == "CustomResourceDefinition"
                             and o["spec"]["group"] == "cilium.io")
    cilium_crds = sorted(d["metadata"]["name"] for p in (DEPLOY / "crds" / "cilium").glob("cilium.io_*.yaml")
                         for d in parsed[p])
    checks.check("ciliumCRDs.install=true renders deploy/crds/cilium",
                 [] if cilium_in_chart == cilium_crds else [f"{cilium_in_chart} != {cilium_crds}"])

    # kubectl kustomize.
    kubectl = str(tools.tool("kubectl"))
    built = {}
    kustomizations = sorted(DEPLOY.rglob("kustomization.yaml"))
    checks.check("deploy/manifests, deploy/crds, deploy/crds/cilium and deploy/cleanup are kustomizations",
                 [f"{d} has no kustomization.yaml" for d in KUSTOMIZATIONS
                  if DEPLOY / d / "kustomization.yaml" not in kustomizations])
    for kustomization in kustomizations:
        directory = kustomization.parent
        result = run([kubectl, "kustomize", str(directory)])
        where = directory.relative_to(REPO)
        if result.returncode != 0:
            checks.fail(f"kubectl kustomize {where}", result.stderr)
            continue
        built[directory] = load_all(result.stdout)
        sources = sorted(name_of(d) for p in parsed if p.parent == directory and p.name != "kustomization.yaml"
                         for d in parsed[p])
        checks.check(f"kubectl kustomize {where} builds every object of its directory",
                     [] if sorted(name_of(d) for d in built[directory]) == sources else
                     [f"built {sorted(name_of(d) for d in built[directory])}, directory has {sources}"])

    # Built-in kinds against Kubernetes' schemas.
    cleanup = built.get(DEPLOY / "cleanup", [])
    crds = [d for p in yaml_files(DEPLOY / "crds") for d in parsed[p] if d.get("kind") == "CustomResourceDefinition"]
    builtin = [o for o in features + cleanup if o["apiVersion"].split("/")[0] not in ("porin.dev", "monitoring.coreos.com")]
    for version in KUBERNETES_VERSIONS:
        checks.check(f"kubernetes-validate --strict, Kubernetes {version}: {len(builtin)} objects",
                     kubernetes_validate_problems(builtin, version))

    # CRDs: structural, valid defaults, and the custom objects.
    for crd in crds:
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            checks.check(f"{crd['metadata']['name']} {version['name']}: structural schema, CEL rules with offline twins, valid defaults",
                         structural_problems(schema) + default_problems(schema))
    custom = CustomResources(crds)
    instances = [(f"{p.relative_to(REPO)}", d) for p in yaml_files(DEPLOY / "examples") for d in parsed[p]]
    instances += [("helm template (every feature)", o) for o in features if o["apiVersion"].startswith("porin.dev/")]
    for fixtures in ("seed", "lab"):
        for path in yaml_files(REPO / "tests" / "fixtures" / fixtures):
            instances += [(f"{path.relative_to(REPO)}", d) for d in load_all(path.read_text())
                          if isinstance(d, dict) and custom.knows(d)]
    unknown = [f"{where}: {name_of(d)}" for where, d in instances if not custom.knows(d)]
    checks.check("deploy/examples holds only kinds of deploy/crds", unknown)
    for where, obj in instances:
        if custom.knows(obj):
            checks.check(f"{where}: {name_of(obj)} validates against its CRD", custom.problems(obj))
    for path in yaml_files(REJECTED):
        for obj in parsed[path]:
            expected = obj["metadata"].get("annotations", {}).get("expect")
            problems = custom.problems(obj) if custom.knows(obj) else ["not a kind of deploy/crds"]
            checks.check(f"{path.relative_to(REPO)}: {name_of(obj)} is rejected: {expected}",
                         ["it validates"] if not problems else
                         [] if expected and any(expected in p for p in problems) else
                         [f"rejected for another reason than `{expected}`:"] + problems)

    # The agent's contract, on the default and the every-feature rendering.
    for what, objects in (("default", default), ("every feature on", features)):
        checks.check(f"RBAC is exactly the agent's needs, no wildcards ({what})", guarded(rbac_problems, objects))
        checks.check(f"DaemonSet: unprivileged agent, capabilities {sorted(AGENT_CAPABILITIES)}, probes, mounts, flags ({what})",
                     guarded(daemonset_problems, objects))
        checks.check(f"Service and ServiceMonitor select the agent's API ({what})", guarded(service_problems, objects))
    if not any(o["kind"] == "ServiceMonitor" for o in features):
        checks.fail("metrics.serviceMonitor.enabled renders a ServiceMonitor", "none rendered")
    checks.check("cleanup DaemonSet: `porin agent uninstall` with the agent's image, pin directory and mounts",
                 guarded(cleanup_problems, cleanup, default))
    checks.check("deploy/image/Dockerfile builds what the DaemonSet runs", guarded(image_problems))
    return finish(checks)


def finish(checks):
    print(f"deploy checks: {checks.passed} passed, {len(checks.failed)} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except tools.Missing as err:
        print(f"FAIL: {err}")
        sys.exit(1)

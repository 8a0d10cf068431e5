"""Checks for the deploy/ manifests that kubernetes-validate cannot do (run by validate-manifests).

1. KServe resources (InferenceService, ServingRuntime) against the schema of the KServe Python
   SDK's generated models (`kserve` wheel from PyPI, no dependencies installed): the SDK is
   generated from the same OpenAPI description as the CRDs, so each model class lists the fields
   (`attribute_map`), their types (`openapi_types`) and the required ones (setters that refuse
   None). Unknown fields, wrong types and missing required fields fail; Kubernetes types inside
   them (V1Container, V1Probe, ...) are validated with kubernetes-validate's JSON schemas.
2. Deployment policy: probes on the v2 health routes, resource requests, Prometheus annotations
   on the metrics port, drain_delay + graceful_shutdown_timeout < terminationGracePeriodSeconds,
   stateless replicas (--ncs), the model store as a volume.

Usage: python check_manifests.py SDK_DIR SCHEMA_DIR FILE... (SDK_DIR holds kserve/models).
"""
import glob
import importlib
import inspect
import json
import os
import re
import sys

import jsonschema
import yaml
from referencing import Registry, Resource

sdk_dir, schema_dir, files = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, sdk_dir)
models = importlib.import_module("kserve.models")

definitions = json.load(open(os.path.join(schema_dir, "_definitions.json")))
registry = Resource.from_contents(definitions) @ Registry()
K8S_ALIASES = {"ResourceQuantity": "io.k8s.apimachinery.pkg.api.resource.Quantity",
               "V1Time": "io.k8s.apimachinery.pkg.apis.meta.v1.Time"}


def k8s_definition(type_name):
    """The JSON-schema definition behind an SDK type name such as V1Container or K8sIoApiAppsV1DeploymentStrategy."""
    if type_name in K8S_ALIASES:
        return K8S_ALIASES[type_name]
    match = re.fullmatch(r"K8sIoApi([A-Z][a-z]+)(V\d\w*?)([A-Z]\w+)", type_name)
    if match:
        key = f"io.k8s.api.{match.group(1).lower()}.{match.group(2).lower()}.{match.group(3)}"
        return key if key in definitions["$defs"] else None
    match = re.fullmatch(r"(V\d(?:alpha\d|beta\d)?)([A-Z]\w+)", type_name)
    if not match:
        return None
    version, kind = match.group(1).lower(), match.group(2)
    for prefix in ("io.k8s.api.core", "io.k8s.apimachinery.pkg.apis.meta"):
        key = f"{prefix}.{version}.{kind}"
        if key in definitions["$defs"]:
            return key
    candidates = [k for k in definitions["$defs"] if k.endswith(f".{version}.{kind}")]
    return candidates[0] if len(candidates) == 1 else None


def required_fields(cls):
    required = []
    for attribute in cls.openapi_types:
        setter = getattr(cls, attribute, None)
        if isinstance(setter, property) and setter.fset is not None:
            source = inspect.getsource(setter.fset)
            if "must not be `None`" in source:
                required.append(attribute)
    return required


errors = []


def check(value, type_name, path):
    if value is None:
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list ({type_name}), got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check(item, type_name[5:-1], f"{path}[{i}]")
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map ({type_name})")
            return
        inner = type_name[5:-1].split(",", 1)[1].strip()
        for key, item in value.items():
            check(item, inner, f"{path}.{key}")
        return
    simple = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object, "datetime": str}
    if type_name in simple:
        if type_name == "int" and isinstance(value, bool) or not isinstance(value, simple[type_name]):
            errors.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    cls = getattr(models, type_name, None)
    if cls is not None:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object ({type_name})")
            return
        by_json = {json_key: attribute for attribute, json_key in cls.attribute_map.items()}
        for key, item in value.items():
            if key not in by_json:
                errors.append(f"{path}.{key}: unknown field of {type_name}")
                continue
            check(item, cls.openapi_types[by_json[key]], f"{path}.{key}")
        for attribute in required_fields(cls):
            if cls.attribute_map[attribute] not in value:
                errors.append(f"{path}: {type_name} requires '{cls.attribute_map[attribute]}'")
        return
    key = k8s_definition(type_name)
    if key is None:
        errors.append(f"{path}: no schema for type {type_name}")
        return
    validator = jsonschema.Draft202012Validator({"$ref": f"{definitions['$id']}#/$defs/{key}"}, registry=registry)
    for error in validator.iter_errors(value):
        where = ".".join(str(p) for p in error.absolute_path)
        errors.append(f"{path}{'.' + where if where else ''}: {error.message} ({key})")


KSERVE = {("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
          ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
          ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime"}


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def properties(text):
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


documents = []
for path in files:
    for document in yaml.safe_load_all(open(path)):
        if document:
            documents.append((path, document))

failures = 0
for path, document in documents:
    kind = document.get("kind")
    name = f"{path} {kind}/{document.get('metadata', {}).get('name')}"
    errors.clear()
    model = KSERVE.get((document.get("apiVersion"), kind))
    if model is None:
        continue
    check(document, model, kind)
    spec = document.get("spec", {})
    if kind == "InferenceService":
        predictor = spec.get("predictor", {})
        if "containers" in predictor:
            protocol = env_of(predictor["containers"][0]).get("PROTOCOL")
            if protocol != "v2":
                errors.append(f"{kind}: the custom predictor's PROTOCOL is {protocol!r}, not v2")
        elif predictor.get("model", {}).get("protocolVersion") != "v2":
            errors.append(f"{kind}: spec.predictor.model.protocolVersion is not v2")
    if errors:
        failures += 1
        print(f"FAIL {name} against the kserve SDK's {model}:")
        for error in errors:
            print(f"    {error}")
    else:
        print(f"ok   {name} against the kserve SDK's {model} (fields, types, required; Kubernetes types by JSON schema)")

# ---- deployment policy
policy = []
config = next((d for _, d in documents if d.get("kind") == "ConfigMap" and "config.properties" in d.get("data", {})), None)
deployment = next((d for _, d in documents if d.get("kind") == "Deployment"), None)
if deployment is not None:
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    values = properties(config["data"]["config.properties"]) if config else {}
    grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
    drain = int(values.get("drain_delay", 5)) + int(values.get("graceful_shutdown_timeout", 20))
    policy.append((drain < grace, f"drain_delay + graceful_shutdown_timeout = {drain} s < terminationGracePeriodSeconds {grace} s"))
    for probe, route in (("livenessProbe", "/v2/health/live"), ("readinessProbe", "/v2/health/ready")):
        got = container.get(probe, {}).get("httpGet", {}).get("path")
        policy.append((got == route, f"{probe} on {route} (is {got})"))
    requests = container.get("resources", {}).get("requests", {})
    policy.append(("cpu" in requests and "memory" in requests, f"resource requests {requests}"))
    annotations = pod.get("metadata", {}).get("annotations", {})
    metrics_port = values.get("metrics_address", "").rsplit(":", 1)[-1]
    policy.append((annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/port") == metrics_port
                   and annotations.get("prometheus.io/path") == "/metrics",
                   f"Prometheus scrape annotations on port {annotations.get('prometheus.io/port')} = metrics_address port {metrics_port}"))
    policy.append(("--ncs" in container.get("args", []), "stateless: --ncs (no snapshot)"))
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    store = values.get("model_store")
    policy.append((store in mounts, f"model_store {store} is a volume ({mounts.get(store)})"))
    policy.append((values.get("load_models", "") not in ("",), f"models from config: load_models={values.get('load_models')}"))
    policy.append((values.get("inference_address", "").startswith("http://0.0.0.0:"), "inference listens on 0.0.0.0 in the pod"))
    for ok, text in policy:
        print(f"{'ok  ' if ok else 'FAIL'} policy: {text}")
        failures += 0 if ok else 1

sys.exit(1 if failures else 0)

"""What operators deploy: docker-compose.yml, the Dockerfile and deploy/k8s, checked without Docker or a cluster.

The values that must agree with the code (the web port, setting names, topic names) are read from the code,
not repeated here, so a change on one side fails here instead of in production.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from stream.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMA = ROOT / "deploy" / "clickhouse" / "warnings.sql"
SETTING_VARS = {f"{ENV_PREFIX}{f.name.upper()}" for f in fields(Settings)}
WEB_PORT = Settings().web_port
DEFAULTS = Settings()
TOPICS = {DEFAULTS.disbursements_topic, DEFAULTS.transfers_topic, DEFAULTS.deadletter_topic,
          DEFAULTS.warnings_topic}


def load_yaml(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


@pytest.fixture(scope="module")
def compose() -> dict:
    (doc,) = load_yaml(ROOT / "docker-compose.yml")
    return doc


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict]:
    """(kind, name) -> object, for every k8s manifest listed in kustomization.yaml."""
    (kustomization,) = load_yaml(K8S / "kustomization.yaml")
    objects = {}
    for resource in kustomization["resources"]:
        for doc in load_yaml(K8S / resource):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in objects, f"{resource}: {key} defined twice"
            objects[key] = doc
    return objects


def assert_pinned(image: str, where: str) -> None:
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"{where}: image {image!r} has no explicit tag"
    assert tag != "latest" and re.search(r"\d", tag), f"{where}: image {image!r} is not pinned to a version"


def env_names(mapping_or_list) -> set[str]:
    if isinstance(mapping_or_list, dict):
        return set(mapping_or_list)
    return {item.split("=", 1)[0] if isinstance(item, str) else item["name"] for item in mapping_or_list}


def assert_real_settings(names: set[str], where: str) -> None:
    unknown = sorted(n for n in names if n.startswith(ENV_PREFIX) and n not in SETTING_VARS)
    assert not unknown, f"{where}: {unknown} are not settings; known: {sorted(SETTING_VARS)}"


# --- docker-compose.yml -----------------------------------------------------------------------------------

def test_compose_has_the_four_services_with_pinned_images(compose):
    services = compose["services"]
    assert {"kafka", "topic-init", "clickhouse", "worker"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["topic-init"]["image"] == services["kafka"]["image"], "kafka-topics.sh from the same image"
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    for name, service in services.items():
        if "image" in service:
            assert_pinned(service["image"], f"service {name}")
    assert services["worker"]["build"]["dockerfile"] == "Dockerfile"


def test_compose_kafka_runs_kraft_with_a_listener_for_compose_clients(compose):
    env = compose["services"]["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = str(env["KAFKA_NODE_ID"])
    voter_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == node_id
    listeners = dict(item.split("://", 1) for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://", 1) for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(item.split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocols) and set(advertised) <= set(listeners)
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners and controller not in advertised
    assert listeners[controller].rsplit(":", 1)[-1] == voter.rsplit(":", 1)[-1]
    # what the worker is told to bootstrap from is an advertised listener
    broker_url = compose["services"]["worker"]["environment"]["FUNDFLOW_BROKER_URL"]
    assert broker_url.split("://", 1)[1] in advertised.values()
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    assert str(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == "1", "single node: internal topics RF 1"
    assert "CLUSTER_ID" in env


def test_compose_healthchecks_and_start_order(compose):
    services = compose["services"]
    for name in ("kafka", "clickhouse", "worker"):
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        assert services[name]["restart"] in ("unless-stopped", "always", "on-failure"), name
    assert services["topic-init"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert services["worker"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "topic-init": {"condition": "service_completed_successfully"},
        "clickhouse": {"condition": "service_healthy"},
    }
    assert services["topic-init"]["restart"] == "no"


def test_compose_topic_init_creates_every_fundflow_topic_with_partitions(compose):
    init = compose["services"]["topic-init"]
    script_host_path = None
    for volume in init["volumes"]:
        source, target = volume.split(":")[:2]
        if target in init["entrypoint"]:
            script_host_path = ROOT / source
    assert script_host_path is not None and script_host_path.is_file(), "topic-init script is mounted"
    script = script_host_path.read_text()
    assert "/opt/kafka/bin/kafka-topics.sh" in script and "--if-not-exists" in script
    assert "--partitions" in script and "--replication-factor" in script
    for topic in TOPICS:
        assert re.search(rf"(^|\s){re.escape(topic)}([\s;]|$)", script, re.M), f"{topic} not created"


def test_compose_clickhouse_mounts_the_schema_into_initdb(compose):
    clickhouse = compose["services"]["clickhouse"]
    mounts = [v.split(":") for v in clickhouse["volumes"]]
    initdb = [(src, dst) for src, dst, *_ in mounts if dst.startswith("/docker-entrypoint-initdb.d/")]
    assert initdb, "schema not mounted into /docker-entrypoint-initdb.d"
    for source, target in initdb:
        assert (ROOT / source).resolve() == SCHEMA and target.endswith(".sql")
    assert SCHEMA.is_file(), f"{SCHEMA.relative_to(ROOT)} does not exist"
    assert clickhouse["healthcheck"]["test"][1:3] == ["wget", "--spider"]


def test_compose_worker_settings_rules_and_health(compose):
    worker = compose["services"]["worker"]
    env = worker["environment"]
    assert_real_settings(env_names(env), "compose worker")
    assert env["FUNDFLOW_BROKER_URL"] == "kafka://kafka:9092"
    assert re.fullmatch(r"clickhouse://([^@/]+@)?clickhouse:9000/default", env["FUNDFLOW_CLICKHOUSE_URL"])
    assert env["FUNDFLOW_WEBHOOK_URL"].startswith("${FUNDFLOW_WEBHOOK_URL"), "webhook URL comes from .env"
    assert f"./rules:{env['FUNDFLOW_RULES_DIR']}:ro" in worker["volumes"]
    assert worker["command"] == ["worker"]
    # the healthcheck and the published port follow FUNDFLOW_WEB_PORT, defaulting to the Settings default
    port_expr = f"${{FUNDFLOW_WEB_PORT:-{WEB_PORT}}}"
    assert env["FUNDFLOW_WEB_PORT"] == port_expr
    check = " ".join(worker["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port_expr}/healthz" in check and "urllib.request" in check
    assert "stop_grace_period" in worker


def test_compose_secrets_come_from_env_file_not_from_the_repository(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${CLICKHOUSE_PASSWORD:?" in text, "ClickHouse password is required from .env"
    assert compose["services"]["worker"]["environment"]["FUNDFLOW_WEBHOOK_SECRET"].startswith("${")


# --- Dockerfile ---------------------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfile_base_pinned_non_root_entrypoint_and_healthcheck():
    instructions = dockerfile_instructions()
    bases = [rest.split()[0] for keyword, rest in instructions if keyword == "FROM"]
    assert bases and all(base.startswith("python:3.11") and "slim" in base for base in bases)
    for base in bases:
        assert_pinned(base, "Dockerfile FROM")
        assert re.match(r"python:3\.11\.\d+-", base), f"{base}: pin the patch release"
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, "no USER: the worker would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    final_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM"):]
    assert any(k == "USER" for k, _ in final_stage), "USER must be set in the final stage"
    keywords = dict(instructions)
    assert keywords["ENTRYPOINT"] == '["fundflow"]' and keywords["CMD"] == '["worker"]'
    assert keywords["EXPOSE"] == str(WEB_PORT)
    assert "/healthz" in keywords["HEALTHCHECK"] and "curl" not in keywords["HEALTHCHECK"]
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "pip wheel" in runs and "[test]" not in runs and ".[" not in runs, "no dev extras in the image"


def test_dockerfile_copies_only_what_exists_and_is_not_dockerignored():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for keyword, rest in dockerfile_instructions():
        if keyword != "COPY" or "--from=" in rest:
            continue
        *sources, _ = shlex.split(rest)
        for source in sources:
            path = source.rstrip("/")
            assert (ROOT / path).exists(), f"COPY {source}: not in the repository"
            assert not any(fnmatch.fnmatch(path, pattern.rstrip("/")) for pattern in ignored), \
                f"COPY {source}: excluded by .dockerignore"
    for must_ignore in (".git", ".venv", ".env"):
        assert must_ignore in ignored


# --- deploy/k8s ---------------------------------------------------------------------------------------------

def worker_container(manifests) -> dict:
    deployment = manifests[("StatefulSet", "fundflow-worker")]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_every_k8s_image_is_pinned(manifests):
    for (kind, name), doc in manifests.items():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            assert_pinned(container["image"], f"{kind}/{name}")
    (kustomization,) = load_yaml(K8S / "kustomization.yaml")
    for image in kustomization.get("images", []):
        assert image["newTag"] != "latest"


def test_worker_probes_hit_the_port_the_worker_serves(manifests):
    container = worker_container(manifests)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}

    def probe_port(probe):
        port = probe["httpGet"]["port"]
        return ports[port] if isinstance(port, str) else port

    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert probe_port(container[probe]) == WEB_PORT, probe
    settings = manifests[("ConfigMap", "fundflow-settings")]["data"]
    assert int(settings["FUNDFLOW_WEB_PORT"]) == WEB_PORT
    service = manifests[("Service", "fundflow-worker-metrics")]
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in ports and service_port["port"] == WEB_PORT
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == WEB_PORT


def test_worker_deployment_resources_shutdown_and_non_root(manifests):
    deployment = manifests[("StatefulSet", "fundflow-worker")]
    pod = deployment["spec"]["template"]["spec"]
    container = worker_container(manifests)
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"][
        "labels"].items()
    service = manifests[("Service", "fundflow-worker-metrics")]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_worker_keeps_its_data_dir_on_a_volume_of_its_own(manifests):
    """Snapshots of the detection state live in data_dir: a pod that keeps it restarts without replaying the
    whole window."""
    worker = manifests[("StatefulSet", "fundflow-worker")]
    (claim,) = worker["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in worker_container(manifests)["volumeMounts"]}
    data_dir = manifests[("ConfigMap", "fundflow-settings")]["data"].get("FUNDFLOW_DATA_DIR", "/var/lib/fundflow")
    assert mounts[claim["metadata"]["name"]] == data_dir
    assert claim["metadata"]["name"] not in {v["name"] for v in worker["spec"]["template"]["spec"]["volumes"]}
    assert ("Service", worker["spec"]["serviceName"]) in manifests


def test_worker_env_comes_from_configmap_and_secret_with_real_setting_names(manifests):
    container = worker_container(manifests)
    sources = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in container["envFrom"]}
    assert sources == {"configMapRef": "fundflow-settings", "secretRef": "fundflow-secrets"}
    settings = manifests[("ConfigMap", "fundflow-settings")]["data"]
    secret = manifests[("Secret", "fundflow-secrets")]["stringData"]
    assert_real_settings(set(settings), "configmap.yaml")
    assert_real_settings(set(secret), "secret.yaml")
    assert_real_settings(env_names(container.get("env", [])), "statefulset.yaml")
    assert "FUNDFLOW_WEBHOOK_SECRET" in secret and "FUNDFLOW_WEBHOOK_SECRET" not in settings
    for topic_setting in ("FUNDFLOW_DISBURSEMENTS_TOPIC", "FUNDFLOW_TRANSFERS_TOPIC", "FUNDFLOW_DEADLETTER_TOPIC",
                          "FUNDFLOW_WARNINGS_TOPIC"):
        assert settings[topic_setting] in TOPICS
    # every value is accepted by the settings parser (secrets hold placeholders that must parse too)
    from stream.settings import load_settings
    load_settings(None, env={**settings, **{k: v for k, v in secret.items() if k in SETTING_VARS}})


def test_rules_configmap_is_mounted_where_rules_dir_points(manifests):
    container = worker_container(manifests)
    pod = manifests[("StatefulSet", "fundflow-worker")]["spec"]["template"]["spec"]
    rules_dir = manifests[("ConfigMap", "fundflow-settings")]["data"]["FUNDFLOW_RULES_DIR"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == rules_dir]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == "fundflow-rules"


def test_kustomize_generators_pack_the_repository_rules_and_schema():
    (kustomization,) = load_yaml(K8S / "kustomization.yaml")
    generators = {g["name"]: g["files"] for g in kustomization["configMapGenerator"]}
    packed_rules = {(K8S / f.split("=", 1)[-1]).resolve() for f in generators["fundflow-rules"]}
    repo_rules = {p.resolve() for p in sorted((ROOT / "rules").glob("*.yaml"))}
    assert packed_rules == repo_rules, (
        f"deploy/k8s/kustomization.yaml must pack exactly rules/*.yaml: missing "
        f"{sorted(str(p.relative_to(ROOT)) for p in repo_rules - packed_rules)}, extra "
        f"{sorted(str(p.relative_to(ROOT)) for p in packed_rules - repo_rules)}")
    (schema,) = generators["fundflow-clickhouse-schema"]
    key, _, path = schema.partition("=")
    assert (K8S / path).resolve() == SCHEMA and SCHEMA.is_file()
    assert key == "warnings.sql"


def test_schema_job_applies_the_packed_schema_file(manifests):
    job = manifests[("Job", "fundflow-clickhouse-schema")]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (mount,) = container["volumeMounts"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == "fundflow-clickhouse-schema"
    assert f"{mount['mountPath']}/warnings.sql" in container["args"]
    secret = manifests[("Secret", "fundflow-secrets")]["stringData"]
    for env in container["env"]:
        ref = env["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "fundflow-secrets" and ref["key"] in secret


# --- deploy/OPERATIONS.md -----------------------------------------------------------------------------------

def test_operations_guide_names_every_setting_and_every_metric():
    from stream.worker.metrics import FAMILIES

    guide = (ROOT / "deploy" / "OPERATIONS.md").read_text()
    documented = set(re.findall(r"`(FUNDFLOW_[A-Z_]+)`", guide))
    assert not SETTING_VARS - documented, f"settings missing from the guide: {sorted(SETTING_VARS - documented)}"
    assert not documented - SETTING_VARS, f"the guide names settings that do not exist: " \
                                          f"{sorted(documented - SETTING_VARS)}"
    names = {name + "_total" if kind == "counter" else name for name, (kind, _, _) in FAMILIES.items()}
    assert len(names) == 28
    for name in names:
        assert f"`{name}`" in guide, f"metric {name} is not documented"

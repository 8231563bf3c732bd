"""docker-compose.yml and the Kubernetes manifests stay complete and agree with the
service table (no Docker engine needed: they are read as YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from plugboard_cli.services import SERVICES, ServiceEntry

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the `- KEY=value` form
        return dict(item.split("=", 1) for item in env)
    return env


def test_infrastructure_is_apache_kafka_and_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["postgres"]["image"].startswith("postgres:17")
    for name in ("kafka", "postgres"):
        assert "healthcheck" in services[name]


@pytest.mark.parametrize("entry", SERVICES, ids=lambda entry: entry.name)
def test_each_service_is_complete(compose: dict[str, Any], entry: ServiceEntry) -> None:
    service = compose["services"][entry.name]
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    env = _env(service)
    assert env["DATABASE_URL"].startswith(f"postgresql://{entry.role}@")
    assert env["KAFKA_BOOTSTRAP_SERVERS"]
    assert env["PLUGBOARD_JWT_PUBLIC_KEY_FILE"]
    assert env["PLUGBOARD_SERVICE_KEYS_DIR"].startswith("/keys/")  # the migrate job writes it
    for other in SERVICES:  # every service finds every other one by its compose name
        assert env[other.url_env] == f"http://{other.name}:{other.port}"
    assert env[f"{entry.env_prefix}HTTP_HOST"] == "0.0.0.0"
    assert env[f"{entry.env_prefix}HTTP_PORT"] == str(entry.port)
    assert service["command"] == entry.command
    assert f"{entry.port}:{entry.port}" in service["ports"]
    depends = service["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert f"{entry.port}/readyz" in " ".join(service["healthcheck"]["test"])


def test_migrate_runs_once_before_the_services(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]
    assert "build" in migrate
    assert "plugboard migrate" in " ".join(migrate["command"])
    env = _env(migrate)
    assert env["DATABASE_URL"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"]
    assert set(migrate["depends_on"]) == {"kafka", "postgres"}


def _k8s_documents() -> list[dict[str, Any]]:
    """Every resource the kustomization applies."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    documents: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        documents += [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    return documents


def test_k8s_manifests_parse_and_are_all_listed() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    assert all(doc["kind"] and doc["metadata"]["name"] for doc in _k8s_documents())


@pytest.mark.parametrize("entry", SERVICES, ids=lambda entry: entry.name)
def test_k8s_has_deployment_and_service(entry: ServiceEntry) -> None:
    by_kind = {
        doc["kind"]: doc for doc in _k8s_documents() if doc["metadata"]["name"] == entry.name
    }
    deployment, service = by_kind["Deployment"], by_kind["Service"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == entry.command
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"name": "http", "containerPort": entry.port} in container["ports"]
    env = {item["name"]: item for item in container["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == entry.name
    assert env[f"{entry.env_prefix}HTTP_HOST"]["value"] == "0.0.0.0"
    assert env[f"{entry.env_prefix}HTTP_PORT"]["value"] == str(entry.port)
    _assert_identity_keys_mounted(deployment, entry)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["port"] == entry.port


def _assert_identity_keys_mounted(deployment: dict[str, Any], entry: ServiceEntry) -> None:
    """Its own private key, no other service's, and every public key, in the keys dir the
    config map names; every base URL in the config map."""
    config = next(doc for doc in _k8s_documents() if doc["kind"] == "ConfigMap")["data"]
    keys_dir = config["PLUGBOARD_SERVICE_KEYS_DIR"]
    for other in SERVICES:
        assert config[other.url_env] == f"http://{other.name}:{other.port}"
    pod = deployment["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "keys")
    mounted = {item["key"]: item["path"] for item in volume["secret"]["items"]}
    mount = pod["containers"][0]["volumeMounts"]
    root = next(m["mountPath"] for m in mount if m["name"] == "keys")
    private = {key for key in mounted if key.endswith(".pem") and not key.endswith(".pub.pem")}
    assert private - {"jwt_public.pem"} == {f"{entry.name}.pem"}
    for other in SERVICES:
        assert f"{root}/{mounted[f'{other.name}.pub.pem']}" == f"{keys_dir}/{other.name}.pub.pem"
    assert f"{root}/{mounted[f'{entry.name}.pem']}" == f"{keys_dir}/{entry.name}.pem"

"""The cluster deployment files under deploy/, checked with what runs without a cluster: the
manifests against the Kubernetes JSON schemas (kubernetes-validate), the instance configuration
loaded by Dagster with dagster-k8s' run launcher and a real PostgreSQL, the Helm values in
agreement with it, and the code location validated with the cluster's settings."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dagster import DagsterInstance
from dagster._config import process_config
from dagster._core.instance.ref import InstanceRef
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_k8s import K8sRunLauncher
from dagster_postgres import PostgresRunStorage

from raising_dagster.config import load_settings
from tests.cluster.postgres import PostgresServer

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.33.0"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _cluster_env() -> dict[str, str]:
    """The raising-env ConfigMap's variables."""
    (config_map,) = [
        d for d in _docs(DEPLOY / "k8s" / "raising-env.yaml") if d["kind"] == "ConfigMap"
    ]
    return dict(config_map["data"])


@pytest.mark.parametrize("manifest", sorted((DEPLOY / "k8s").glob("*.yaml")), ids=lambda p: p.name)
def test_manifests_validate_against_the_kubernetes_schemas(manifest: Path) -> None:
    docs = _docs(manifest)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises on an error


def test_the_schema_check_catches_a_broken_manifest() -> None:
    (deployment, *_) = _docs(DEPLOY / "k8s" / "teacher-fleet.yaml")
    deployment["spec"]["replicas"] = "four"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    deployment["spec"]["replicas"] = 4
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_teacher_fleet_serves_the_url_the_settings_name() -> None:
    deployment, service, _ = _docs(DEPLOY / "k8s" / "teacher-fleet.yaml")
    env = _cluster_env()
    port = service["spec"]["ports"][0]["port"]
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert env["RAISING_TEACHER__BASE_URL"] == f"http://{host}:{port}/v1"
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--served-model-name={env['RAISING_TEACHER__MODEL']}" in args
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def _instance_config(kubeconfig: Path) -> dict[str, Any]:
    """deploy/instance/dagster.yaml as a pod would read it, but for the Kubernetes client: a
    kubeconfig file instead of the in-cluster service account (there is no cluster here)."""
    config = yaml.safe_load((DEPLOY / "instance" / "dagster.yaml").read_text())
    launcher = config["run_launcher"]["config"]
    assert launcher["load_incluster_config"] is True
    launcher["load_incluster_config"] = False
    launcher["kubeconfig_file"] = str(kubeconfig)
    return config


def _kubeconfig(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def test_instance_configuration_loads_with_the_k8s_launcher_and_postgres(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = yaml.safe_load((DEPLOY / "instance" / "dagster.yaml").read_text())
    checked = process_config(K8sRunLauncher.config_type(), shipped["run_launcher"]["config"])
    assert checked.success, checked.errors
    db = postgres.create_database("deploy").rsplit("/", 1)[1]
    for key, value in {
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USER": postgres.user,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": db,
        "AWS_REGION": "eu-central-1",
    }.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "home"
    home.mkdir()
    config = _instance_config(_kubeconfig(tmp_path / "kubeconfig"))
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, K8sRunLauncher)
        assert launcher.job_namespace == "raising"
        assert launcher.env_config_maps[-1] == "raising-env"
        assert launcher.env_secrets == ["raising-secrets"]
        assert launcher.run_k8s_config["container_config"]["resources"]["requests"]["cpu"] == "2"
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.compute_log_manager, S3ComputeLogManager)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 64
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 32
        assert instance.run_monitoring_enabled


def test_helm_values_render_the_same_instance() -> None:
    """The chart renders dagster.yaml from the values: the limits, the launcher's environment,
    the database and the compute logs there are the ones deploy/instance/dagster.yaml has."""
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    instance = yaml.safe_load((DEPLOY / "instance" / "dagster.yaml").read_text())
    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    assert (
        concurrency["runs"]["maxConcurrentRuns"]
        == instance["concurrency"]["runs"]["max_concurrent_runs"]
    )
    assert (
        concurrency["runs"]["tagConcurrencyLimits"]
        == instance["concurrency"]["runs"]["tag_concurrency_limits"]
    )
    assert concurrency["pools"] == {
        "defaultLimit": instance["concurrency"]["pools"]["default_limit"],
        "granularity": instance["concurrency"]["pools"]["granularity"],
    }
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher = instance["run_launcher"]["config"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert [m["name"] for m in k8s["envConfigMaps"]] == launcher["env_config_maps"]
    assert [s["name"] for s in k8s["envSecrets"]] == launcher["env_secrets"]
    assert k8s["jobNamespace"] == launcher["job_namespace"]
    assert k8s["runK8sConfig"]["containerConfig"] == launcher["run_k8s_config"]["container_config"]
    pg, db = values["postgresql"], instance["storage"]["postgres"]["postgres_db"]
    assert pg["postgresqlScheme"] == db["scheme"] == "postgresql+psycopg2"
    env = _cluster_env()
    assert (pg["postgresqlHost"], pg["postgresqlUsername"], pg["postgresqlDatabase"]) == (
        env["DAGSTER_PG_HOST"],
        env["DAGSTER_PG_USER"],
        env["DAGSTER_PG_DB"],
    )
    assert values["global"]["postgresqlSecretName"] == launcher["postgres_password_secret"]
    logs = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert (logs["bucket"], logs["prefix"]) == (
        instance["compute_logs"]["config"]["bucket"],
        instance["compute_logs"]["config"]["prefix"],
    )
    (code,) = values["dagster-user-deployments"]["deployments"]
    assert code["dagsterApiGrpcArgs"] == ["-m", "raising_dagster.definitions"]


def test_cluster_settings_load() -> None:
    """The pipeline's settings from the raising-env ConfigMap (the S3 landing and store are
    placeholders until the S3 storage lands, so only the rest is checked)."""
    env = _cluster_env()
    settings = load_settings(
        teacher={
            "backend": env["RAISING_TEACHER__BACKEND"],
            "model": env["RAISING_TEACHER__MODEL"],
            "base_url": env["RAISING_TEACHER__BASE_URL"],
            "concurrency": int(env["RAISING_TEACHER__CONCURRENCY"]),
            "timeout_s": float(env["RAISING_TEACHER__TIMEOUT_S"]),
        },
        executor=env["RAISING_EXECUTOR"],
    )
    assert settings.teacher.endpoints() == [env["RAISING_TEACHER__BASE_URL"]]
    assert env["RAISING_LANDING_DIR"].startswith("s3://")
    assert env["RAISING_STORE_DIR"].startswith("s3://")


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["in_process", "k8s_job"])
def test_dagster_definitions_validate_with_the_cluster_settings(
    executor: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        **{k: v for k, v in _cluster_env().items() if k.startswith("RAISING_TEACHER__")},
        "RAISING_EXECUTOR": executor,
        # make exports DAGSTER_HOME=data/dagster_home, which a fresh clone does not have yet
        "DAGSTER_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-m",
            "raising_dagster.definitions",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr

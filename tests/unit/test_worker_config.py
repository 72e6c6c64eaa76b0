"""Worker configuration: the shipped yml, Pulsar's yml, validation messages,
environment overrides and the derived helpers."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fnworker.coordination.topics import cluster_topics
from fnworker.scheduler.settings.config_loader import load_worker_config, parse_worker_config
from fnworker.scheduler.settings.config_validation import struct_fields
from fnworker.scheduler.settings.worker_config import (
    KUBERNETES_RUNTIME_CLASS,
    PROCESS_RUNTIME_CLASS,
    RUNTIME_NAMES,
    SCHEDULER_STRATEGIES,
    THREAD_RUNTIME_CLASS,
    ConfigError,
    ResourceBounds,
    RuntimeFactoryConfig,
    WorkerConfig,
    broker_client_settings,
    effective_worker_id,
    runtime_factory_config,
    runtime_name,
    scheduler_strategy,
    worker_web_address,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "functions_worker.yml"
PULSAR = Path(__file__).parent / "fixtures" / "pulsar_functions_worker.yml"

PULSAR_KUBERNETES_BLOCK = f"""\
functionRuntimeFactoryClassName: {KUBERNETES_RUNTIME_CLASS}
functionRuntimeFactoryConfigs:
    k8Uri:
    jobNamespace: functions
    jobName:
    kubernetesServiceDomainSuffix:
    pulsarDockerImageName: apachepulsar/pulsar-all:4.0.0
    functionDockerImages:
      PYTHON: apachepulsar/pulsar-python:4.0.0
    imagePullPolicy: Always
    pulsarRootDir:
    configAdminCLI: /bin/pulsarctl
    submittingInsidePod: true
    pulsarServiceUrl: pulsar+ssl://broker.pulsar:6651
    pulsarAdminUrl: https://broker.pulsar:8443
    installUserCodeDependencies: true
    pythonDependencyRepository:
    pythonExtraDependencyRepository:
    customLabels:
      team: data
    expectedMetricsCollectionInterval: 30
    changeConfigMap:
    changeConfigMapNamespace:
    cpuOverCommitRatio: 1.0
    memoryOverCommitRatio: 2.0
    grpcPort: 9093
    metricsPort: 9094
    narExtractionDirectory:
    functionInstanceClassPath:
    extraFunctionDependenciesDir:
    percentMemoryPadding: 10
    gracePeriodSeconds: 5
functionInstanceMinResources:
  cpu: 1
  ram: 1073741824
  disk: 10737418240
"""


def write(tmp_path: Path, text: str, name: str = "functions_worker.yml") -> Path:
    """A config file holding ``text``."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def pulsar_with_runtime(tmp_path: Path, runtime_line: str) -> Path:
    """Pulsar's yml with its functionRuntimeFactoryClassName line replaced."""
    old = f"functionRuntimeFactoryClassName: {PROCESS_RUNTIME_CLASS}"
    text = PULSAR.read_text(encoding="utf-8")
    assert old in text
    return write(tmp_path, text.replace(old, runtime_line))


def from_mapping(document: dict[str, Any], environ: dict[str, str] | None = None) -> WorkerConfig:
    """Validate an in-memory document (no warnings expected)."""
    loaded = parse_worker_config(document, environ or {}, source="functions_worker.yml")
    assert loaded.warnings == ()
    return loaded.config


def error_of(document: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    """The ConfigError message for an invalid document."""
    with pytest.raises(ConfigError) as caught:
        parse_worker_config(document, environ or {}, source="functions_worker.yml")
    return str(caught.value)


# --- the shipped file -------------------------------------------------------


def test_shipped_yml_loads_without_warnings() -> None:
    loaded = load_worker_config(SHIPPED, {})
    assert loaded.warnings == ()
    assert runtime_name(loaded.config) == "thread"
    assert loaded.config.worker_port == 6750
    assert loaded.config.pulsar_service_url == "pulsar://localhost:6650"


def test_shipped_yml_equals_the_record_defaults() -> None:
    shipped = load_worker_config(SHIPPED, {}).config
    # Documented difference: the record leaves the class name empty so that the
    # deprecated *ContainerFactory keys can still select a runtime.
    assert shipped.function_runtime_factory_class_name == THREAD_RUNTIME_CLASS
    assert WorkerConfig().function_runtime_factory_class_name is None
    unified = msgspec.structs.replace(shipped, function_runtime_factory_class_name=None)
    assert unified == WorkerConfig()
    assert runtime_name(WorkerConfig()) == runtime_name(shipped)


def test_shipped_yml_lists_every_key_and_only_known_keys() -> None:
    document = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    deprecated = {"threadContainerFactory", "processContainerFactory", "kubernetesContainerFactory"}
    assert list(document) == [key for key in struct_fields(WorkerConfig) if key not in deprecated]
    runtime_keys = list(document["functionRuntimeFactoryConfigs"])
    assert runtime_keys == list(struct_fields(RuntimeFactoryConfig))


def test_no_path_means_defaults() -> None:
    assert load_worker_config(None, {}) == load_worker_config(None, {})
    assert load_worker_config(None, {}).config == WorkerConfig()
    assert load_worker_config(None, {}).warnings == ()


def test_defaults_round_trip_through_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, msgspec.yaml.encode(WorkerConfig()).decode())
    loaded = load_worker_config(path, {})
    assert loaded.config == WorkerConfig()
    assert loaded.warnings == ()


def test_fnworker_extension_defaults() -> None:
    config = WorkerConfig()
    assert (config.heartbeat_interval_ms, config.worker_dead_timeout_ms) == (200, 1000)
    assert (config.lease_renew_ms, config.lease_timeout_ms) == (150, 600)
    assert config.state_directory == "state"
    assert config.max_package_size_bytes == 100 * 2**20
    assert config.max_request_body_bytes == 110 * 2**20


def test_admission_limit_defaults() -> None:
    config = WorkerConfig()
    assert (config.max_function_parallelism, config.max_fleet_instances) == (1000, 100_000)
    assert config.max_input_topics_per_function == 100
    assert config.max_function_config_bytes == 2**20
    assert (config.max_package_unpacked_bytes, config.max_package_files) == (512 * 2**20, 20_000)
    assert config.max_module_parse_bytes == 8 * 2**20
    assert config.function_instance_max_resources == ResourceBounds(
        cpu=64.0, ram=256 * 2**30, disk=2**40
    )


# --- Pulsar's own file ------------------------------------------------------


def test_pulsar_yml_loads_with_one_warning_listing_unimplemented_keys() -> None:
    loaded = load_worker_config(PULSAR, {})
    config = loaded.config
    assert runtime_name(config) == "process"
    assert effective_worker_id(config) == "standalone"
    assert config.configuration_metadata_store_url == "zk:localhost:2181"
    assert config.configuration_store_servers == "localhost:2181"
    assert config.authentication_providers == ()  # null in the file
    assert config.tls_trust_certs_file_path == ""  # null means the default
    assert config.function_runtime_factory_configs.log_directory == "logs/"
    assert len(loaded.warnings) == 1
    prefix = "ignoring keys fnworker does not implement: "
    assert loaded.warnings[0].startswith(prefix)
    listed = loaded.warnings[0].removeprefix(prefix).split(", ")
    assert listed[:3] == [
        "webServiceHaProxyProtocolEnabled",
        "webServiceTrustXForwardedFor",
        "webServiceLogDetailedAddresses",
    ]
    for key in ("numHttpServerThreads", "tlsKeyStore", "zooKeeperSessionTimeoutMillis"):
        assert key in listed
    assert not set(listed) & set(struct_fields(WorkerConfig))
    assert len(listed) == 36


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (THREAD_RUNTIME_CLASS, "thread"),
        (PROCESS_RUNTIME_CLASS, "process"),
        (KUBERNETES_RUNTIME_CLASS, "kubernetes"),
        ("thread", "thread"),
        ("process", "process"),
        ("kubernetes", "kubernetes"),
    ],
)
def test_runtime_from_class_or_short_name(tmp_path: Path, value: str, expected: str) -> None:
    path = pulsar_with_runtime(tmp_path, f"functionRuntimeFactoryClassName: {value}")
    assert runtime_name(load_worker_config(path, {}).config) == expected


def test_pulsar_kubernetes_sample_loads(tmp_path: Path) -> None:
    old_runtime = (
        f"functionRuntimeFactoryClassName: {PROCESS_RUNTIME_CLASS}\n"
        "functionRuntimeFactoryConfigs:\n"
    )
    text = PULSAR.read_text(encoding="utf-8")
    start = text.index(old_runtime)
    end = text.index("#### JVM arguments")
    path = write(tmp_path, text[:start] + PULSAR_KUBERNETES_BLOCK + text[end:])
    config = load_worker_config(path, {}).config
    k8s = runtime_factory_config(config)
    assert runtime_name(config) == "kubernetes"
    assert k8s.job_namespace == "functions"
    assert k8s.pulsar_root_dir == "/pulsar"  # empty in the file
    assert k8s.kubernetes_service_domain_suffix == ".svc.cluster.local"
    assert k8s.config_admin_cli == "/bin/pulsarctl"
    assert k8s.function_docker_images == {"PYTHON": "apachepulsar/pulsar-python:4.0.0"}
    assert k8s.custom_labels == {"team": "data"}
    assert (k8s.image_pull_policy, k8s.submitting_inside_pod) == ("Always", True)
    assert k8s.install_user_code_dependencies is True
    assert (k8s.percent_memory_padding, k8s.memory_over_commit_ratio) == (10, 2.0)
    assert k8s.pulsar_service_url == "pulsar+ssl://broker.pulsar:6651"
    assert config.function_instance_min_resources is not None
    assert config.function_instance_min_resources.ram == 1073741824


def test_runtime_literal_and_name_table_agree() -> None:
    hints = typing.get_type_hints(WorkerConfig, include_extras=True)
    optional = hints["function_runtime_factory_class_name"]  # Annotated[Literal[...]] | None
    literal = typing.get_args(typing.get_args(optional)[0])[0]
    assert set(typing.get_args(literal)) == set(RUNTIME_NAMES)
    scheduler = typing.get_args(hints["scheduler_class_name"])[0]
    assert set(typing.get_args(scheduler)) == set(SCHEDULER_STRATEGIES)


# --- deprecated runtime keys, scheduler, identity ---------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("threadContainerFactory", "thread"),
        ("processContainerFactory", "process"),
        ("kubernetesContainerFactory", "kubernetes"),
    ],
)
def test_deprecated_container_factory_selects_runtime(key: str, expected: str) -> None:
    config = from_mapping({key: {"logDirectory": "/old"}})
    assert runtime_name(config) == expected
    assert runtime_factory_config(config).log_directory == "/old"


def test_class_name_wins_over_deprecated_key() -> None:
    config = from_mapping(
        {
            "functionRuntimeFactoryClassName": "process",
            "kubernetesContainerFactory": {"logDirectory": "/old"},
        }
    )
    assert runtime_name(config) == "process"
    assert runtime_factory_config(config).log_directory == "logs/"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("org.apache.pulsar.functions.worker.scheduler.RoundRobinScheduler", "roundrobin"),
        ("roundrobin", "roundrobin"),
        ("leastloaded", "leastloaded"),
    ],
)
def test_scheduler_strategy(value: str, expected: str) -> None:
    assert scheduler_strategy(from_mapping({"schedulerClassName": value})) == expected
    assert value in SCHEDULER_STRATEGIES


def test_effective_worker_id() -> None:
    assert effective_worker_id(WorkerConfig()) == "localhost-6750"
    config = from_mapping({"workerHostname": "w1.example", "workerPort": 7000})
    assert effective_worker_id(config) == "w1.example-7000"
    assert effective_worker_id(from_mapping({"workerId": "alpha"})) == "alpha"
    assert effective_worker_id(from_mapping({"workerId": 7})) == "7"  # numbers become strings


def test_topics_and_web_address() -> None:
    config = from_mapping(
        {"pulsarFunctionsNamespace": "sys/fn", "clusterCoordinationTopicName": "c"}
    )
    topics = cluster_topics(
        config.pulsar_functions_namespace,
        metadata=config.function_metadata_topic_name,
        assignments=config.function_assignment_topic_name,
        coordinate=config.cluster_coordination_topic_name,
    )  # as the worker names them (worker/launch.py)
    assert topics.metadata == "persistent://sys/fn/metadata"
    assert topics.assignments_prefix == "persistent://sys/fn/assignments"
    assert topics.coordinate == "persistent://sys/fn/c"
    assert worker_web_address(config) == "http://localhost:6750"
    assert worker_web_address(from_mapping({"functionWebServiceUrl": "http://lb:80"})) == (
        "http://lb:80"
    )


def test_broker_client_settings_fall_back_like_pulsar() -> None:
    old_names = from_mapping(
        {
            "authenticationEnabled": True,
            "clientAuthenticationPlugin": "org.example.Token",
            "clientAuthenticationParameters": "token:abc",
            "tlsTrustCertsFilePath": "/ca.pem",
        }
    )
    settings_old = broker_client_settings(old_names)
    assert settings_old.authentication_enabled is True
    assert settings_old.authentication_plugin == "org.example.Token"
    assert settings_old.authentication_parameters == "token:abc"
    assert settings_old.trust_certs_file_path == "/ca.pem"
    new_names = from_mapping(
        {
            "authenticationEnabled": True,
            "brokerClientAuthenticationEnabled": False,
            "brokerClientAuthenticationPlugin": "org.example.Tls",
            "clientAuthenticationPlugin": "org.example.Token",
            "brokerClientTrustCertsFilePath": "/broker-ca.pem",
        }
    )
    settings_new = broker_client_settings(new_names)
    assert settings_new.authentication_enabled is False
    assert settings_new.authentication_plugin == "org.example.Tls"
    assert settings_new.trust_certs_file_path == "/broker-ca.pem"
    assert broker_client_settings(WorkerConfig()).trust_certs_file_path is None


# --- warnings ---------------------------------------------------------------


def test_unknown_keys_nested_and_top_level_share_one_warning() -> None:
    loaded = parse_worker_config(
        {
            "workrPort": 7000,
            "bookkeeperClientAuthenticationPlugin": "x",
            "functionRuntimeFactoryConfigs": {"logDirectory": "/l", "jvmOpts": "-Xmx1g"},
        },
        {},
        source="functions_worker.yml",
    )
    assert loaded.warnings == (
        "ignoring keys fnworker does not implement: workrPort (did you mean workerPort?), "
        "bookkeeperClientAuthenticationPlugin, functionRuntimeFactoryConfigs.jvmOpts",
    )
    assert loaded.config.worker_port == 6750
    assert loaded.config.function_runtime_factory_configs.log_directory == "/l"


# --- invalid values ---------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"workerPort": "abc"},
            "workerPort = 'abc' is not valid; expected an integer from 1 to 65535.",
        ),
        (
            {"workerPortTls": 70000},
            "workerPortTls = 70000 is not valid; expected an integer from 1 to 65535.",
        ),
        (
            {"functionRuntimeFactoryClassName": "foo"},
            "functionRuntimeFactoryClassName = 'foo' is not valid; expected one of thread, "
            "process, kubernetes or a Pulsar class name such as "
            "org.apache.pulsar.functions.runtime.thread.ThreadRuntimeFactory.",
        ),
        (
            {"schedulerClassName": "org.example.MyScheduler"},
            "schedulerClassName = 'org.example.MyScheduler' is not valid; expected one of "
            "roundrobin, leastloaded or "
            "org.apache.pulsar.functions.worker.scheduler.RoundRobinScheduler.",
        ),
        (
            {"pulsarServiceUrl": "http://localhost:6650"},
            "pulsarServiceUrl = 'http://localhost:6650' is not valid; "
            "expected a URL starting with pulsar:// or pulsar+ssl://.",
        ),
        (
            {"pulsarWebServiceUrl": "localhost:8080"},
            "pulsarWebServiceUrl = 'localhost:8080' is not valid; "
            "expected a URL starting with http:// or https://.",
        ),
        (
            {"pulsarFunctionsNamespace": "public"},
            "pulsarFunctionsNamespace = 'public' is not valid; expected a namespace of the "
            "form tenant/namespace, such as public/functions.",
        ),
        (
            {"pulsarFunctionsNamespace": "a/b/c"},
            "pulsarFunctionsNamespace = 'a/b/c' is not valid; expected a namespace of the "
            "form tenant/namespace, such as public/functions.",
        ),
        (
            {"functionMetadataTopicName": "a/b"},
            "functionMetadataTopicName = 'a/b' is not valid; "
            "expected a non-empty name of letters, digits and -=:._.",
        ),
        (
            {"failureCheckFreqMs": 0},
            "failureCheckFreqMs = 0 is not valid; expected a positive integer.",
        ),
        (
            {"initialBrokerReconnectMaxRetries": -1},
            "initialBrokerReconnectMaxRetries = -1 is not valid; "
            "expected an integer of at least 0.",
        ),
        (
            {"authenticationEnabled": "maybe"},
            "authenticationEnabled = 'maybe' is not valid; expected true or false.",
        ),
        (
            {"superUserRoles": ["admin", ["ops"]]},
            "superUserRoles = ['admin', ['ops']] is not valid; expected a list of strings.",
        ),
        (
            {"properties": ["a"]},
            "properties = ['a'] is not valid; expected a mapping of keys to values.",
        ),
        (
            {"functionRuntimeFactoryConfigs": "logs/"},
            "functionRuntimeFactoryConfigs = 'logs/' is not valid; "
            "expected a mapping of keys to values.",
        ),
        (
            {"functionRuntimeFactoryConfigs": {"percentMemoryPadding": -5}},
            "functionRuntimeFactoryConfigs.percentMemoryPadding = -5 is not valid; "
            "expected an integer of at least 0.",
        ),
        (
            {"functionRuntimeFactoryConfigs": {"cpuOverCommitRatio": 0.5}},
            "functionRuntimeFactoryConfigs.cpuOverCommitRatio = 0.5 is not valid; "
            "expected a number of at least 1.0.",
        ),
        (
            {"functionRuntimeFactoryConfigs": {"memoryOverCommitRatio": "high"}},
            "functionRuntimeFactoryConfigs.memoryOverCommitRatio = 'high' is not valid; "
            "expected a number of at least 1.0.",
        ),
        (
            {"functionRuntimeFactoryConfigs": {"grpcPort": 0}},
            "functionRuntimeFactoryConfigs.grpcPort = 0 is not valid; "
            "expected an integer from 1 to 65535.",
        ),
        (
            {"functionRuntimeFactoryConfigs": {"imagePullPolicy": "always"}},
            "functionRuntimeFactoryConfigs.imagePullPolicy = 'always' is not valid; "
            "expected one of Always, IfNotPresent, Never.",
        ),
        (
            {"functionRuntimeFactoryConfigs": {"pulsarServiceUrl": "broker:6650"}},
            "functionRuntimeFactoryConfigs.pulsarServiceUrl = 'broker:6650' is not valid; "
            "expected a URL starting with pulsar:// or pulsar+ssl://.",
        ),
        (
            {"functionRuntimeFactoryConfigs": {"pulsarClientMemoryLimit": {"absoluteValue": -1}}},
            "functionRuntimeFactoryConfigs.pulsarClientMemoryLimit.absoluteValue = -1 is not "
            "valid; expected an integer of at least 0.",
        ),
        (
            {"functionInstanceMaxResources": {"cpu": 0}},
            "functionInstanceMaxResources.cpu = 0 is not valid; "
            "expected a positive number of at most 1000000.0.",
        ),
        (
            {"functionInstanceMaxResources": {"cpu": float("inf")}},
            "functionInstanceMaxResources.cpu = inf is not valid; "
            "expected a positive number of at most 1000000.0.",
        ),
        (
            {"functionInstanceMinResources": {"ram": 2**70}},
            "functionInstanceMinResources.ram = 1180591620717411303424 is not valid; "
            "expected a positive integer of at most 9223372036854775807.",
        ),
        (
            {"functionInstanceMinResources": {"disk": 2**41}},
            "functionInstanceMinResources.disk = 2199023255552 is not valid; "
            "expected at most functionInstanceMaxResources.disk (1099511627776).",
        ),
        (
            {"maxFunctionParallelism": 200_000},
            "maxFunctionParallelism = 200000 is not valid; "
            "expected a positive integer of at most maxFleetInstances (100000).",
        ),
        (
            {"maxPackageFiles": 0},
            "maxPackageFiles = 0 is not valid; expected a positive integer.",
        ),
        (
            {"leaseRenewMs": 600},
            "leaseRenewMs = 600 is not valid; expected a positive integer below "
            "leaseTimeoutMs (600).",
        ),
        (
            {"heartbeatIntervalMs": 5000},
            "heartbeatIntervalMs = 5000 is not valid; expected a positive integer below "
            "workerDeadTimeoutMs (1000).",
        ),
        (
            {"maxRequestBodyBytes": 1024},
            "maxRequestBodyBytes = 1024 is not valid; expected a positive integer of at least "
            "maxPackageSizeBytes (104857600).",
        ),
        (
            {"tlsEnabled": True, "tlsKeyFilePath": "/key.pem"},
            "tlsCertificateFilePath = null is not valid; "
            "expected the path of a certificate file when tlsEnabled is true.",
        ),
        (
            {"workerPort": None},
            "workerPort = null is not valid; expected an integer from 1 to 65535 "
            "unless tlsEnabled is true and workerPortTls is set.",
        ),
    ],
)
def test_invalid_value_is_one_sentence_naming_the_key(
    document: dict[str, Any], message: str
) -> None:
    assert error_of(document) == f"functions_worker.yml: {message}"


def test_error_from_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "workerPort: abc\n")
    with pytest.raises(ConfigError) as caught:
        load_worker_config(path, {})
    assert str(caught.value) == (
        f"{path}: workerPort = 'abc' is not valid; expected an integer from 1 to 65535."
    )


def test_https_only_worker_is_valid() -> None:
    config = from_mapping(
        {
            "workerPort": None,
            "tlsEnabled": True,
            "tlsCertificateFilePath": "/c.pem",
            "tlsKeyFilePath": "/k.pem",
        }
    )
    assert config.worker_port is None
    assert effective_worker_id(config) == "localhost-6751"
    assert worker_web_address(config) == "https://localhost:6751"


def test_yaml_syntax_error_is_one_sentence_with_line(tmp_path: Path) -> None:
    path = write(tmp_path, "workerId: a\nworkerPort: 6750\n  bad: indent\n")
    with pytest.raises(ConfigError) as caught:
        load_worker_config(path, {})
    message = str(caught.value)
    # The problem text differs between libyaml and pure-Python PyYAML.
    assert message.startswith(f"{path}: line 3, column 6 is not valid YAML; mapping values ")
    assert message.endswith(".")
    assert message.count(". ") == 0  # one sentence


def test_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"expected a mapping of keys to values\.$"):
        load_worker_config(write(tmp_path, "- workerPort\n"), {})


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yml"
    with pytest.raises(ConfigError) as caught:
        load_worker_config(path, {})
    assert str(caught.value) == f"{path}: the file cannot be read (No such file or directory)."


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_worker_config(write(tmp_path, "# nothing\n"), {}).config == WorkerConfig()


# --- environment overrides --------------------------------------------------


def test_env_overrides_flat_nested_list_and_map() -> None:
    environ = {
        "FNWORKER_workerPort": "7000",
        "FNWORKER_functionRuntimeFactoryConfigs__logDirectory": "/x",
        "FNWORKER_superUserRoles": "[admin,ops]",
        "FNWORKER_properties__tokenPublicKey": "file:///k.pem",
        "FNWORKER_authenticationEnabled": "true",
        "FNWORKER_workerId": "",
        "PATH": "/usr/bin",
    }
    loaded = load_worker_config(PULSAR, environ)
    config = loaded.config
    assert config.worker_port == 7000
    assert config.function_runtime_factory_configs.log_directory == "/x"
    assert config.function_runtime_factory_configs.java_instance_jar_location is None
    assert config.super_user_roles == ("admin", "ops")
    assert config.properties == {"tokenPublicKey": "file:///k.pem"}
    assert config.authentication_enabled is True
    assert config.worker_id is None  # empty value is null, overriding "standalone"
    assert effective_worker_id(config) == "localhost-7000"
    assert len(loaded.warnings) == 1  # only the file's ignored keys


def test_env_overrides_without_a_file() -> None:
    loaded = load_worker_config(None, {"FNWORKER_pulsarServiceUrl": "pulsar+ssl://b:6651"})
    assert loaded.config.pulsar_service_url == "pulsar+ssl://b:6651"
    assert loaded.warnings == ()


def test_env_whole_nested_mapping_then_one_key() -> None:
    config = from_mapping(
        {},
        {
            "FNWORKER_functionRuntimeFactoryConfigs": "{jobNamespace: fn, grpcPort: 9000}",
            "FNWORKER_functionRuntimeFactoryConfigs__grpcPort": "9100",
        },
    )
    assert config.function_runtime_factory_configs.job_namespace == "fn"
    assert config.function_runtime_factory_configs.grpc_port == 9100


def test_env_unknown_keys_warn_and_upper_case_names_are_left_alone() -> None:
    loaded = parse_worker_config(
        {},
        {
            "FNWORKER_workrPort": "1",
            "FNWORKER_functionRuntimeFactoryConfigs__nope": "1",
            "FNWORKER_workerPort__inner": "1",
            "FNWORKER_WORKERPORT": "1",
            "FNWORKER_LOG_LEVEL": "debug",
        },
        source="functions_worker.yml",
    )
    assert loaded.config == WorkerConfig()
    assert loaded.warnings == (
        "ignoring environment variables naming no key fnworker reads: "
        "FNWORKER_functionRuntimeFactoryConfigs__nope, FNWORKER_workerPort__inner, "
        "FNWORKER_workrPort",
    )


def test_env_error_names_the_variable() -> None:
    message = error_of({}, {"FNWORKER_functionRuntimeFactoryConfigs__grpcPort": "x"})
    assert message == (
        "FNWORKER_functionRuntimeFactoryConfigs__grpcPort: functionRuntimeFactoryConfigs."
        "grpcPort = 'x' is not valid; expected an integer from 1 to 65535."
    )
    whole = error_of({}, {"FNWORKER_functionRuntimeFactoryConfigs": "{grpcPort: 0}"})
    assert whole.startswith("FNWORKER_functionRuntimeFactoryConfigs: ")


def test_env_value_that_is_not_yaml() -> None:
    assert error_of({}, {"FNWORKER_superUserRoles": "[admin"}) == (
        "FNWORKER_superUserRoles: superUserRoles = '[admin' is not valid; expected a YAML "
        "value such as 7000, true, pulsar://host:6650 or [admin, ops]."
    )


# --- properties -------------------------------------------------------------


PORT_KEYS = ["workerPort", "workerPortTls"]
POSITIVE_KEYS = [
    "failureCheckFreqMs",
    "rescheduleTimeoutMs",
    "instanceLivenessCheckFreqMs",
    "numFunctionPackageReplicas",
]


@settings(max_examples=60, deadline=None)
@given(
    key=st.sampled_from(PORT_KEYS),
    port=st.integers(min_value=1, max_value=65535),
    interval_key=st.sampled_from(POSITIVE_KEYS),
    interval=st.integers(min_value=1, max_value=2**62),
    via_env=st.booleans(),
)
def test_valid_ints_round_trip(
    key: str, port: int, interval_key: str, interval: int, via_env: bool
) -> None:
    document = {key: port, interval_key: interval}
    if via_env:
        environ = {f"FNWORKER_{k}": str(v) for k, v in document.items()}
        config = from_mapping({}, environ)
    else:
        config = from_mapping(yaml.safe_load(yaml.safe_dump(document)))
    encoded = msgspec.to_builtins(config)
    assert encoded[key] == port
    assert encoded[interval_key] == interval


@settings(max_examples=60, deadline=None)
@given(
    key=st.sampled_from(PORT_KEYS),
    port=st.one_of(st.integers(max_value=0), st.integers(min_value=65536)),
)
def test_out_of_range_ports_name_the_key(key: str, port: int) -> None:
    assert error_of({key: port}) == (
        f"functions_worker.yml: {key} = {port} is not valid; expected an integer from 1 to 65535."
    )


@pytest.mark.parametrize("cluster", ["east-1", "west-1"])
def test_geo_examples_load_into_their_own_namespace(cluster: str) -> None:
    from fnworker.coordination.topics import cluster_topics

    path = Path(__file__).resolve().parents[2] / "config" / "examples" / f"geo-{cluster}.yml"
    loaded = load_worker_config(path, {})
    assert loaded.warnings == ()
    assert loaded.config.pulsar_functions_cluster == cluster
    topics = cluster_topics(loaded.config.pulsar_functions_namespace)
    assert topics.coordinate == f"persistent://public/functions-{cluster}/coordinate"


def test_a_kubernetes_domain_suffix_other_than_the_default_is_a_warning() -> None:
    document = {"functionRuntimeFactoryConfigs": {"kubernetesServiceDomainSuffix": ".svc.corp"}}
    loaded = parse_worker_config(document, {}, source="functions_worker.yml")
    assert loaded.warnings == (
        "functionRuntimeFactoryConfigs kubernetesServiceDomainSuffix '.svc.corp' is not used: "
        "the worker reaches function pods at the IPs its pod watch reports, not through "
        "cluster DNS",
    )
    default = {
        "functionRuntimeFactoryConfigs": {"kubernetesServiceDomainSuffix": ".svc.cluster.local"}
    }
    assert parse_worker_config(default, {}, source="functions_worker.yml").warnings == ()


def test_a_bookkeeper_state_url_gets_one_sentence_that_the_broker_keeps_state(
    tmp_path: Path,
) -> None:
    path = tmp_path / "functions_worker.yml"
    path.write_text("stateStorageServiceUrl: bk://127.0.0.1:4181\npulsarFunctionsNamespace: a/b\n")
    loaded = load_worker_config(path, {})
    assert loaded.config.state_storage_service_url == "bk://127.0.0.1:4181"
    assert loaded.warnings == (
        "stateStorageServiceUrl bk://127.0.0.1:4181 is not used: fnworker keeps function "
        "state on the broker instead of BookKeeper's table service, one topic per function "
        "in a/b (docs/state.md)",
    )

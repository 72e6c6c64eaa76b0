"""The worker configuration as frozen records, and the values derived from it. No I/O.

``WorkerConfig`` mirrors Pulsar's ``conf/functions_worker.yml``: attributes are
snake_case, YAML keys are Pulsar's camelCase, and defaults are Pulsar's (they equal
the values in fnworker's shipped ``config/functions_worker.yml``). The keys under
"fnworker extensions" exist only in fnworker. Loading a file, environment overrides
(``FNWORKER_workerPort=7000``, ``FNWORKER_functionRuntimeFactoryConfigs__logDirectory=/x``)
and error messages live in ``fnworker.scheduler.settings.config_loader``.

Deliberate differences from Pulsar's defaults, all documented in the shipped yml:
``workerId`` is empty (so it becomes ``<workerHostname>-<workerPort>``), and
``functionRuntimeFactoryClassName`` is empty in the record, which means "use a
deprecated ``*ContainerFactory`` key if present, else the thread runtime".
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from fnworker.scheduler.model.records import WorkerId

RuntimeName = Literal["thread", "process", "kubernetes"]
SchedulerStrategy = Literal["roundrobin", "leastloaded"]

THREAD_RUNTIME_CLASS: Final = "org.apache.pulsar.functions.runtime.thread.ThreadRuntimeFactory"
PROCESS_RUNTIME_CLASS: Final = "org.apache.pulsar.functions.runtime.process.ProcessRuntimeFactory"
KUBERNETES_RUNTIME_CLASS: Final = (
    "org.apache.pulsar.functions.runtime.kubernetes.KubernetesRuntimeFactory"
)
DEFAULT_FUNCTION_IMAGE: Final = "fnworker/fnworker:0.1.0"
"""The image the repo's Dockerfile builds, tagged with the package version."""
ROUND_ROBIN_SCHEDULER_CLASS: Final = (
    "org.apache.pulsar.functions.worker.scheduler.RoundRobinScheduler"
)

RUNTIME_NAMES: Final[dict[str, RuntimeName]] = {
    "thread": "thread",
    "process": "process",
    "kubernetes": "kubernetes",
    THREAD_RUNTIME_CLASS: "thread",
    PROCESS_RUNTIME_CLASS: "process",
    KUBERNETES_RUNTIME_CLASS: "kubernetes",
}
SCHEDULER_STRATEGIES: Final[dict[str, SchedulerStrategy]] = {
    "roundrobin": "roundrobin",
    "leastloaded": "leastloaded",
    ROUND_ROBIN_SCHEDULER_CLASS: "roundrobin",
}


class ConfigError(ValueError):
    """The configuration is invalid; the message is one sentence naming the key."""


# Value types. Integer and float ranges are described to the user from their
# constraints; the others carry the phrase that completes "expected ...".
Port = Annotated[int, Meta(ge=1, le=65535)]
PositiveInt = Annotated[int, Meta(gt=0)]
NonNegativeInt = Annotated[int, Meta(ge=0)]
PositiveFloat = Annotated[float, Meta(gt=0.0)]
OverCommitRatio = Annotated[float, Meta(ge=1.0)]
Ratio = Annotated[float, Meta(ge=0.0, le=1.0)]
ServiceUrl = Annotated[
    str,
    Meta(
        pattern=r"^pulsar(\+ssl)?://\S+$",
        description="a URL starting with pulsar:// or pulsar+ssl://",
    ),
]
HttpUrl = Annotated[
    str, Meta(pattern=r"^https?://\S+$", description="a URL starting with http:// or https://")
]
Namespace = Annotated[
    str,
    Meta(
        pattern=r"^[-=:.\w]+/[-=:.\w]+$",
        description="a namespace of the form tenant/namespace, such as public/functions",
    ),
]
LocalName = Annotated[
    str, Meta(pattern=r"^[-=:.\w]+$", description="a non-empty name of letters, digits and -=:._")
]
RuntimeFactoryName = Annotated[
    Literal[
        "thread",
        "process",
        "kubernetes",
        "org.apache.pulsar.functions.runtime.thread.ThreadRuntimeFactory",
        "org.apache.pulsar.functions.runtime.process.ProcessRuntimeFactory",
        "org.apache.pulsar.functions.runtime.kubernetes.KubernetesRuntimeFactory",
    ],
    Meta(
        description="one of thread, process, kubernetes or a Pulsar class name such as "
        + THREAD_RUNTIME_CLASS
    ),
]
SchedulerName = Annotated[
    Literal[
        "roundrobin",
        "leastloaded",
        "org.apache.pulsar.functions.worker.scheduler.RoundRobinScheduler",
    ],
    Meta(description="one of roundrobin, leastloaded or " + ROUND_ROBIN_SCHEDULER_CLASS),
]
ImagePullPolicy = Annotated[
    Literal["Always", "IfNotPresent", "Never"],
    Meta(description="one of Always, IfNotPresent, Never"),
]


class ClientMemoryLimit(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Cap on the memory of the Pulsar client shared by thread-runtime instances."""

    absolute_value: NonNegativeInt | None = None
    percent_of_max_direct_memory: Annotated[float, Meta(ge=0.0)] | None = None


class RuntimeFactoryConfig(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``functionRuntimeFactoryConfigs``: the keys of all three runtimes in one record."""

    # Thread runtime.
    thread_group_name: str = "Thread Function Container Group"
    pulsar_client_memory_limit: ClientMemoryLimit | None = None
    # Process runtime.
    log_directory: str = "logs/"
    java_instance_jar_location: str | None = None
    python_instance_location: str | None = None
    extra_function_dependencies_dir: str | None = None
    # Kubernetes runtime.
    k8_uri: str | None = msgspec.field(default=None, name="k8Uri")
    job_namespace: str = "default"
    job_name: str | None = None
    pulsar_docker_image_name: str = DEFAULT_FUNCTION_IMAGE
    function_docker_images: dict[str, str] = msgspec.field(default_factory=dict)
    image_pull_policy: ImagePullPolicy = "IfNotPresent"
    pulsar_root_dir: str = "/pulsar"
    config_admin_cli: str = msgspec.field(default="/bin/pulsar-admin", name="configAdminCLI")
    submitting_inside_pod: bool = False
    pulsar_service_url: ServiceUrl | None = None
    pulsar_admin_url: HttpUrl | None = None
    install_user_code_dependencies: bool = False
    python_dependency_repository: str | None = None
    python_extra_dependency_repository: str | None = None
    custom_labels: dict[str, str] = msgspec.field(default_factory=dict)
    expected_metrics_collection_interval: PositiveInt = 30
    change_config_map: str | None = None
    change_config_map_namespace: str | None = None
    percent_memory_padding: NonNegativeInt = 10
    cpu_over_commit_ratio: OverCommitRatio = 1.0
    memory_over_commit_ratio: OverCommitRatio = 1.0
    grpc_port: Port = 9093
    metrics_port: Port | None = 9094
    nar_extraction_directory: str | None = None
    function_instance_class_path: str | None = None
    grace_period_seconds: NonNegativeInt = 5
    kubernetes_service_domain_suffix: str = ".svc.cluster.local"
    # fnworker: the Kubernetes client's request rate limit (token bucket). 200 requests/s
    # deploys 1,000 functions (2-3 requests each) in about 15 s; the Go client's 5/s
    # would take over 6 minutes.
    k8_requests_per_second: PositiveFloat = msgspec.field(default=200.0, name="k8RequestsPerSecond")
    k8_request_burst: PositiveInt = msgspec.field(default=200, name="k8RequestBurst")


# A cpu amount in cores: finite and positive (inf and nan are not amounts of cpu).
CpuCores = Annotated[float, Meta(gt=0.0, le=1_000_000.0)]
ByteCount = Annotated[int, Meta(gt=0, le=2**63 - 1)]

GIB: Final = 1024**3
MIB: Final = 1024**2


class ResourceBounds(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A bound (or granularity) on what an instance may request; unset parts are free
    (for ``functionInstanceMaxResources``: the built-in cap of that part)."""

    cpu: CpuCores | None = None
    ram: ByteCount | None = None
    disk: ByteCount | None = None


DEFAULT_MAX_RESOURCES: Final = ResourceBounds(cpu=64.0, ram=256 * GIB, disk=1024 * GIB)
"""The cap of ``functionInstanceMaxResources`` parts left unset: 64 cores, 256 GiB ram,
1 TiB disk (a large cloud machine; an instance asking for more cannot be placed anywhere)."""


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Every key of ``functions_worker.yml`` fnworker reads, with Pulsar's defaults."""

    # Identity and web service.
    worker_id: str | None = None
    worker_hostname: str = "localhost"
    worker_port: Port | None = 6750
    worker_port_tls: Port | None = 6751
    function_web_service_url: HttpUrl | None = None
    http_requests_limit_enabled: bool = False
    http_requests_max_per_second: PositiveFloat = 100.0
    authenticate_metrics_endpoint: bool = True
    # HTTP connection hygiene (config/functions_worker.yml explains each bound).
    max_http_server_connections: NonNegativeInt = 2048
    http_header_read_timeout_seconds: PositiveFloat = 10.0
    http_body_read_timeout_seconds: PositiveFloat = 30.0
    http_body_min_bytes_per_second: PositiveInt = 16384
    http_keep_alive_timeout_seconds: PositiveFloat = 15.0
    # Coordination and scheduling.
    pulsar_service_url: ServiceUrl = "pulsar://localhost:6650"
    pulsar_web_service_url: HttpUrl = "http://localhost:8080"
    pulsar_functions_cluster: LocalName = "standalone"
    pulsar_functions_namespace: Namespace = "public/functions"
    function_metadata_topic_name: LocalName = "metadata"
    function_assignment_topic_name: LocalName = "assignments"
    cluster_coordination_topic_name: LocalName = "coordinate"
    state_storage_service_url: str | None = None
    """Pulsar's BookKeeper table service; not used (state lives on the broker)."""
    use_compacted_metadata_topic: bool = False
    scheduler_class_name: SchedulerName = ROUND_ROBIN_SCHEDULER_CLASS
    failure_check_freq_ms: PositiveInt = 30_000
    reschedule_timeout_ms: PositiveInt = 60_000
    rebalance_check_freq_sec: int = -1
    initial_broker_reconnect_max_retries: NonNegativeInt = 60
    assignment_write_max_retries: NonNegativeInt = 60
    instance_liveness_check_freq_ms: PositiveInt = 30_000
    topic_compaction_frequency_sec: int = 1800
    # Function packages.
    num_function_package_replicas: PositiveInt = 1
    download_directory: str = "download/pulsar_functions"
    functions_worker_enable_package_management: bool = False
    # Runtime.
    function_runtime_factory_class_name: RuntimeFactoryName | None = None
    function_runtime_factory_configs: RuntimeFactoryConfig = msgspec.field(
        default_factory=RuntimeFactoryConfig
    )
    thread_container_factory: RuntimeFactoryConfig | None = None
    process_container_factory: RuntimeFactoryConfig | None = None
    kubernetes_container_factory: RuntimeFactoryConfig | None = None
    function_instance_min_resources: ResourceBounds | None = None
    function_instance_max_resources: ResourceBounds | None = msgspec.field(
        default_factory=lambda: DEFAULT_MAX_RESOURCES
    )
    function_instance_resource_granularities: ResourceBounds | None = None
    function_instance_resource_change_in_lock_step: bool = False
    secrets_provider_configurator_class_name: str | None = None
    secrets_provider_configurator_config: dict[str, str] = msgspec.field(default_factory=dict)
    function_auth_provider_class_name: str | None = None
    runtime_customizer_class_name: str | None = None
    runtime_customizer_config: dict[str, Any] = msgspec.field(default_factory=dict)
    # TLS.
    tls_enabled: bool = False
    tls_certificate_file_path: str | None = None
    tls_key_file_path: str | None = None
    tls_trust_certs_file_path: str = ""
    tls_allow_insecure_connection: bool = False
    tls_enable_hostname_verification: bool = True
    tls_require_trusted_client_cert_on_connect: bool = False
    tls_cert_refresh_check_duration_sec: NonNegativeInt = 300
    web_service_tls_protocols: tuple[str, ...] = ()
    web_service_tls_ciphers: tuple[str, ...] = ()
    use_tls: bool = False
    # Authentication and authorization.
    authentication_enabled: bool = False
    authentication_providers: tuple[str, ...] = ()
    authorization_enabled: bool = False
    authorization_provider: str = (
        "org.apache.pulsar.broker.authorization.PulsarAuthorizationProvider"
    )
    super_user_roles: tuple[str, ...] = ()
    proxy_roles: tuple[str, ...] = ()
    broker_client_authentication_enabled: bool | None = None
    broker_client_authentication_plugin: str | None = None
    broker_client_authentication_parameters: str | None = None
    broker_client_trust_certs_file_path: str | None = None
    client_authentication_plugin: str | None = None
    client_authentication_parameters: str | None = None
    configuration_metadata_store_url: str | None = None
    configuration_store_servers: str | None = None
    properties: dict[str, Any] = msgspec.field(default_factory=dict)
    # fnworker extensions: who manages functions when authorizationEnabled (Pulsar keeps
    # tenant admins and namespace grants in its configuration store; docs/security.md).
    tenant_admin_roles: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    namespace_function_roles: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    # fnworker extensions.
    heartbeat_interval_ms: PositiveInt = 200
    worker_dead_timeout_ms: PositiveInt = 1000
    lease_renew_ms: PositiveInt = 150
    lease_timeout_ms: PositiveInt = 600
    state_directory: str = "state"
    coordination_backend: Literal["pulsar", "memory"] = "pulsar"
    # None: decided at start from the broker's kind (runtimes/broker_kind.py).
    pulsar_lite_consumer_id_slots: NonNegativeInt | None = None
    # Automatic rebalancing (docs/coordination.md, "How the fleet rebalances itself").
    rebalance_on_join_enabled: bool = True
    rebalance_join_settle_ms: NonNegativeInt = 2000
    rebalance_min_spread: PositiveInt = 2
    rebalance_min_imbalance_ratio: Ratio = 0.2
    rebalance_min_interval_ms: NonNegativeInt = 2000
    rebalance_max_moves_per_pass: PositiveInt = 100
    rebalance_move_cooldown_ms: NonNegativeInt = 30_000
    # A graceful stop (SIGTERM) hands instances over first, for at most this long
    # (docs/coordination.md, "Graceful stop: hand-off"); 0: stop them at once.
    graceful_handoff_timeout_ms: NonNegativeInt = 10_000
    # The leader snapshots the metadata topic every this many records (0: never), up to
    # a size (docs/coordination.md, "Metadata snapshots").
    function_metadata_snapshot_every_records: NonNegativeInt = 1_000
    function_metadata_snapshot_max_bytes: Annotated[int, Meta(gt=0, le=1024 * MIB)] = 64 * MIB
    max_package_size_bytes: PositiveInt = 100 * 1024 * 1024
    max_request_body_bytes: PositiveInt = 110 * 1024 * 1024
    # fnworker admission limits (docs/limits.md): a function over one is refused with a 400.
    max_function_parallelism: PositiveInt = 1000
    max_fleet_instances: PositiveInt = 100_000
    max_input_topics_per_function: PositiveInt = 100
    max_function_config_bytes: PositiveInt = 1 * MIB
    max_package_unpacked_bytes: PositiveInt = 512 * MIB
    max_package_files: PositiveInt = 20_000
    max_module_parse_bytes: PositiveInt = 8 * MIB


class BrokerClientSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the worker's own Pulsar client connects, after Pulsar's fallbacks."""

    service_url: str
    web_service_url: str
    authentication_enabled: bool
    authentication_plugin: str | None
    authentication_parameters: str | None
    trust_certs_file_path: str | None
    allow_insecure_connection: bool
    enable_hostname_verification: bool


def runtime_name(config: WorkerConfig) -> RuntimeName:
    """The runtime to use: from the class (or short) name, else a deprecated key, else thread."""
    if config.function_runtime_factory_class_name is not None:
        return RUNTIME_NAMES[config.function_runtime_factory_class_name]
    if config.thread_container_factory is not None:
        return "thread"
    if config.process_container_factory is not None:
        return "process"
    if config.kubernetes_container_factory is not None:
        return "kubernetes"
    return "thread"


def runtime_factory_config(config: WorkerConfig) -> RuntimeFactoryConfig:
    """The runtime settings in effect: a deprecated key's only when it selected the runtime."""
    if config.function_runtime_factory_class_name is None:
        for deprecated in (
            config.thread_container_factory,
            config.process_container_factory,
            config.kubernetes_container_factory,
        ):
            if deprecated is not None:
                return deprecated
    return config.function_runtime_factory_configs


def scheduler_strategy(config: WorkerConfig) -> SchedulerStrategy:
    """The placement strategy named by ``schedulerClassName``."""
    return SCHEDULER_STRATEGIES[config.scheduler_class_name]


def effective_worker_id(config: WorkerConfig) -> WorkerId:
    """``workerId``, or Pulsar's default ``<workerHostname>-<workerPort>``."""
    if config.worker_id:
        return WorkerId(config.worker_id)
    port = config.worker_port if config.worker_port is not None else config.worker_port_tls
    return WorkerId(f"{config.worker_hostname}-{port}")


def web_tls_enabled(config: WorkerConfig) -> bool:
    """Whether the worker serves HTTPS: ``tlsEnabled`` and a ``workerPortTls`` (Pulsar's rule)."""
    return config.tls_enabled and config.worker_port_tls is not None


def worker_web_address(config: WorkerConfig) -> str:
    """The URL other workers use to reach this one (``functionWebServiceUrl`` or derived)."""
    if config.function_web_service_url:
        return config.function_web_service_url
    if config.worker_port is None:
        return f"https://{config.worker_hostname}:{config.worker_port_tls}"
    return f"http://{config.worker_hostname}:{config.worker_port}"


def broker_client_settings(config: WorkerConfig) -> BrokerClientSettings:
    """The worker's client settings with Pulsar's fallbacks to the older and shared keys."""
    enabled = config.broker_client_authentication_enabled
    plugin = config.broker_client_authentication_plugin
    parameters = config.broker_client_authentication_parameters
    return BrokerClientSettings(
        service_url=config.pulsar_service_url,
        web_service_url=config.pulsar_web_service_url,
        authentication_enabled=config.authentication_enabled if enabled is None else enabled,
        authentication_plugin=config.client_authentication_plugin if plugin is None else plugin,
        authentication_parameters=(
            config.client_authentication_parameters if parameters is None else parameters
        ),
        trust_certs_file_path=(
            config.broker_client_trust_certs_file_path or config.tls_trust_certs_file_path or None
        ),
        allow_insecure_connection=config.tls_allow_insecure_connection,
        enable_hostname_verification=config.tls_enable_hostname_verification,
    )

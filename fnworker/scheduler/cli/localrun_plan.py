"""What ``fnworker functions localrun`` runs: the function's record, validated exactly
as a worker validates a create (same one-sentence errors), the broker client settings
from pulsar-admin's localrun flags, and one InstanceSpec per instance with its own copy
of the package, made as a worker makes it (PackageStore). Reads the config file and
the package; writes the copies under a folder the caller owns."""

from __future__ import annotations

import argparse
import re
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import msgspec

from fnworker.runtimes.broker_client import with_tls_scheme
from fnworker.scheduler.admin.package_store import PackageStore
from fnworker.scheduler.cli.function_commands import requested_config
from fnworker.scheduler.cli.function_config import CliError
from fnworker.scheduler.decide.admission_limits import FunctionLimits
from fnworker.scheduler.decide.function_validation import validate_new_function
from fnworker.scheduler.model.errors import ApiError
from fnworker.scheduler.model.instances import ClientSettings, InstanceSpec, StateSettings
from fnworker.scheduler.model.records import FunctionRecord, fqfn_of, instance_id_of
from fnworker.scheduler.settings.client_credentials import CredentialError, parse_credentials
from fnworker.scheduler.worker.worker_loops import instance_folder

LOCALRUN_INCARNATION = 0
"""The ``create_time_ms`` of every localrun of a function. The state store keeps a
function's state per incarnation (its create time), so a fixed one lets a function's
state survive from one localrun to the next; a function of the same name deployed on
workers is another incarnation (its real create time) and keeps its state apart."""
NAME_PART = re.compile(r"[A-Za-z0-9_.=:-]+")
BROKER_SCHEMES = ("pulsar", "pulsar+ssl")
LOCAL_CLUSTER = "local"
"""The cluster name localrun instances report, as in Pulsar's LocalRunner."""


class LocalRun(msgspec.Struct, frozen=True, kw_only=True):
    """Everything localrun needs before it touches the broker."""

    record: FunctionRecord
    """Version 1 of the function, validated; its package is set by ``instance_specs``."""
    package: Path
    client: ClientSettings
    state: StateSettings
    first_index: int = 0
    worker_id: str


def localrun_plan(args: argparse.Namespace) -> LocalRun:
    """The validated function and settings the localrun flags describe, or a CliError
    with the same sentence a worker would answer."""
    config = requested_config(args)
    tenant, namespace, name = config.tenant or "", config.namespace or "", config.name or ""
    package = local_package(config.py)
    try:
        validated = validate_new_function(
            tenant, namespace, name, config, package.name, FunctionLimits()
        )
    except ApiError as error:
        raise CliError(error.reason) from None
    record = FunctionRecord(
        fqfn=fqfn_of(tenant, namespace, name),
        version=1,
        config=validated,
        create_time_ms=LOCALRUN_INCARNATION,
        update_time_ms=int(time.time() * 1000),
    )
    if args.instance_id_offset < 0:
        raise CliError(
            f"--instance-id-offset {args.instance_id_offset} is not valid; expected 0 or more"
        )
    return LocalRun(
        record=record,
        package=package,
        client=client_settings(args),
        state=StateSettings(namespace=state_namespace(args.state_namespace)),
        first_index=args.instance_id_offset,
        worker_id=f"localrun-{socket.gethostname().split('.')[0]}",
    )


def state_namespace(text: str) -> str:
    """``--state-namespace`` if it is ``tenant/namespace``."""
    parts = text.split("/")
    if len(parts) != 2 or not all(NAME_PART.fullmatch(part) for part in parts):
        raise CliError(
            f"--state-namespace {text} is not valid; expected tenant/namespace, such as "
            "public/functions"
        )
    return text


def local_package(py: str | None) -> Path:
    """The package file ``--py`` (or the config file's ``py``) names on this machine."""
    if not py:
        raise CliError("--py is required; expected the function's .py, .zip or .whl file")
    scheme = urlparse(py).scheme
    if scheme in ("http", "https"):
        raise CliError(
            f"--py {py} is a URL; localrun runs a local file, expected a path to the "
            "function's .py, .zip or .whl file (download it first)"
        )
    path = Path(py.removeprefix("file://"))
    if not path.is_file():
        raise CliError(
            f"--py {py} is not a readable file; expected the path of the function's "
            ".py, .zip or .whl file"
        )
    return path.resolve()


def client_settings(args: argparse.Namespace) -> ClientSettings:
    """How the instances reach the broker: ``--broker-service-url`` and the client
    authentication and TLS flags (``--use-tls`` turns pulsar:// into pulsar+ssl://)."""
    url = args.broker_service_url
    if urlparse(url).scheme not in BROKER_SCHEMES:
        raise CliError(
            f"--broker-service-url {url} is not valid; expected pulsar://host:6650 "
            "or pulsar+ssl://host:6651"
        )
    try:
        parse_credentials(
            args.client_auth_plugin, args.client_auth_params, setting="--client-auth-params"
        )
    except CredentialError as error:
        raise CliError(str(error)) from None
    return ClientSettings(
        service_url=with_tls_scheme(url, args.use_tls),
        auth_plugin=args.client_auth_plugin or None,
        auth_params=args.client_auth_params or None,
        tls_trust_certs_file_path=args.tls_trust_cert_path or None,
        tls_allow_insecure_connection=args.tls_allow_insecure,
        tls_hostname_verification=args.hostname_verification_enabled,
    )


def instance_specs(run: LocalRun, root: Path) -> list[InstanceSpec]:
    """Store the package under ``root`` and give every instance its own copy (unpacked
    once and shared, as on a worker); one spec per instance."""
    store = PackageStore(root / "packages")
    limits = FunctionLimits().package
    try:
        ref = store.save(run.record.fqfn, 1, run.package, run.package.name)
    except ApiError as error:
        raise CliError(error.reason) from None
    record = msgspec.structs.replace(run.record, package=ref)
    specs = []
    for index in range(run.first_index, run.first_index + record.parallelism()):
        instance = instance_id_of(record.fqfn, index)
        copy = store.copy_for_instance(ref, instance_folder(root / "instances", instance) / "v1")
        store.share_unpacked(ref, copy, limits)
        specs.append(
            InstanceSpec(
                instance=instance,
                index=index,
                function=record,
                package_path=copy,
                worker_id=run.worker_id,
                client=run.client,
                cluster_name=LOCAL_CLUSTER,
                state=run.state,
                package_limits=limits,
            )
        )
    return specs

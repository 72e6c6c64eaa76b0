"""``fnworker kubernetes render``: prints the Kubernetes objects the Kubernetes
runtime would create for a function, as YAML, without contacting any cluster.
Reads the function config file and the worker config; prints to stdout.

When the worker has authentication on, the token Secret is printed with the
placeholder ``REDACTED`` (base64) in place of the submitter's token.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fnworker.runtimes.kubernetes.customizer import load_customizer
from fnworker.runtimes.kubernetes.errors import ManifestError
from fnworker.runtimes.kubernetes.factory import kubernetes_warnings
from fnworker.runtimes.kubernetes.manifests import AuthMaterial, render
from fnworker.runtimes.kubernetes.secrets import check_secrets
from fnworker.runtimes.kubernetes.settings import settings_from_worker
from fnworker.scheduler.cli.function_config import CliError, load_config_file
from fnworker.scheduler.decide.function_validation import function_config_from_mapping
from fnworker.scheduler.model.errors import ApiError
from fnworker.scheduler.model.names import DEFAULT_NAMESPACE, DEFAULT_TENANT
from fnworker.scheduler.model.records import FunctionRecord, fqfn_of
from fnworker.scheduler.settings.config_loader import load_worker_config
from fnworker.scheduler.settings.worker_config import ConfigError, WorkerConfig

PLACEHOLDER = "REDACTED"


def render_command(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """The YAML documents of ``--function-config-file`` under ``--config``'s settings."""
    try:
        config = load_worker_config(Path(args.config) if args.config else None, environ).config
    except ConfigError as error:
        raise CliError(str(error)) from None
    record = function_record(load_config_file(args.function_config_file))
    try:
        return render_yaml(record, config)
    except ManifestError as error:
        raise CliError(str(error)) from None


def function_record(document: Mapping[str, Any]) -> FunctionRecord:
    """A version-1 record of the function the file describes (names default as in the CLI)."""
    fields = dict(document)
    fields.setdefault("tenant", DEFAULT_TENANT)
    fields.setdefault("namespace", DEFAULT_NAMESPACE)
    if not fields.get("name") and fields.get("className"):
        fields["name"] = str(fields["className"]).rsplit(".", 1)[-1]
    if not fields.get("name"):
        raise CliError("the function config file names no function; expected a name key")
    try:
        config = function_config_from_mapping(fields, source="function config")
    except ApiError as error:
        raise CliError(error.reason) from None
    fqfn = fqfn_of(str(config.tenant), str(config.namespace), str(config.name))
    return FunctionRecord(fqfn=fqfn, version=1, config=config)


def render_yaml(record: FunctionRecord, config: WorkerConfig) -> str:
    """Every object of ``record`` as YAML documents, in the order they are created."""
    settings = settings_from_worker(config)
    if settings.kubernetes_secrets:
        check_secrets(record.config.secrets)
    customizer = load_customizer(
        config.runtime_customizer_class_name, config.runtime_customizer_config
    )
    job = render(record, settings, customizer, placeholder_auth(config))
    for warning in kubernetes_warnings(config, settings):  # the worker's, once rendered
        print(f"warning: {warning}", file=sys.stderr)
    return str(yaml.safe_dump_all(job.objects(), sort_keys=False)).rstrip("\n")


def placeholder_auth(config: WorkerConfig) -> AuthMaterial | None:
    """Placeholder token material when the worker authenticates submitters."""
    if not config.authentication_enabled:
        return None
    ca = PLACEHOLDER.encode() if config.tls_trust_certs_file_path else None
    return AuthMaterial(PLACEHOLDER, ca)

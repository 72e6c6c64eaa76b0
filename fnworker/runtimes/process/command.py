"""What an instance process is started with: its command line (no secrets), its
minimal environment and where its log goes. Pure: the worker's pid and environment
come in as arguments."""

from __future__ import annotations

import os
from pathlib import Path

from fnworker.runtimes.process.settings import ProcessSettings
from fnworker.scheduler.model.instances import InstanceSpec
from fnworker.scheduler.model.records import split_fqfn, split_instance_id

PROCESS_MAIN = "fnworker.runtimes.process.process_main"
PASSED_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "HOME", "TMPDIR", "TZ")
PASSED_ENVIRONMENT_PREFIXES = ("FNWORKER_LOG_",)
ENVIRONMENT_SECRETS = ("environment", "EnvironmentBasedSecretsProvider")


def log_file_of(log_directory: Path, instance: str) -> Path:
    """Pulsar's layout: ``{logDirectory}/functions/{tenant}/{ns}/{name}/{name}-{index}.log``."""
    fqfn, index = split_instance_id(instance)
    tenant, namespace, name = split_fqfn(fqfn)
    return log_directory / "functions" / tenant / namespace / name / f"{name}-{index}.log"


def instance_command(
    settings: ProcessSettings, instance: str, control_fd: int, *, parent_pid: int | None = None
) -> list[str]:
    """The command line of an instance process; it carries no secrets. ``parent_pid``
    is the worker's pid (default: this process's)."""
    entry = (
        [str(settings.python_instance_location)]
        if settings.python_instance_location
        else ["-m", PROCESS_MAIN]
    )
    options = {
        "--instance": instance,
        "--control-fd": control_fd,
        "--parent-pid": os.getpid() if parent_pid is None else parent_pid,
        "--log-file": log_file_of(settings.log_directory, instance),
        "--log-max-bytes": settings.log_max_bytes,
        "--log-backups": settings.log_backups,
    }
    return [settings.python_executable, *entry, *(str(x) for kv in options.items() for x in kv)]


def instance_environment(
    spec: InstanceSpec, settings: ProcessSettings, environ: dict[str, str]
) -> dict[str, str]:
    """A minimal environment: locale, PATH, HOME, the dependencies dir, named secrets.

    With the ``environment`` secrets provider the variables named by the function's
    ``secrets`` are passed on, and only those.
    """
    env = {key: environ[key] for key in PASSED_ENVIRONMENT if key in environ}
    env.update({k: v for k, v in environ.items() if k.startswith(PASSED_ENVIRONMENT_PREFIXES)})
    env.setdefault("PATH", os.defpath)
    env.setdefault("LANG", "C.UTF-8")
    if settings.extra_dependencies_dir is not None:
        env["PYTHONPATH"] = str(settings.extra_dependencies_dir)
    if spec.secrets_provider.rsplit(".", 1)[-1] in ENVIRONMENT_SECRETS:
        for name in spec.function.config.secrets:
            if name in environ:
                env[name] = environ[name]
    return env

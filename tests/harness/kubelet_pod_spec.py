"""What the fake kubelet (tests/harness/kubernetes_kubelet.py) starts for a pod: its one
job is turning a pod spec into a ``Launch`` (argv, environment, working directory,
mountPath → local path) or a ``PodConfigError`` saying why the container cannot
start. Does file I/O only (the pod's directory, its secret volumes' files); reads
Secrets through a lookup it is given, starts nothing.

- **Command**: ``command`` + ``args`` (``python``/``python3`` → ``sys.executable``),
  ``$(VAR)`` expanded from the container's env (``$$`` escapes, an unknown reference
  stays as written).
- **Images**: a container whose ``image`` is in the kubelet's ``images`` (an ``Image``: a
  directory built the way the Dockerfile builds it, tests/harness/dockerfile_image.py)
  runs from it: its command word is looked up on the image's ``PATH`` (``python`` is the
  image's interpreter; an absolute one is taken under the image's root), the env starts
  from the image's env instead of this process's, the cwd is the image's WORKDIR, and the
  repo is **not** put on ``PYTHONPATH`` (the pod uses the package installed in the image).
  Absolute paths in ``args``/``env`` other than mountPaths stay as written. Any other
  image runs with this process's interpreter and the repo on ``PYTHONPATH``.
- **Env**: the "image's" env (``PATH``, ``HOME``, ``LANG``, ``LC_*``, ``TZ`` of this
  process, nothing else of it; for an image of ``images``, that image's env) plus
  ``HOSTNAME``, ``KUBERNETES_SERVICE_HOST``/``PORT``, ``PYTHONUNBUFFERED=1`` and
  ``TMPDIR``, then the container's ``env``: ``value``
  (expanded from the variables before it), ``valueFrom.fieldRef`` ``metadata.name``,
  ``metadata.namespace``, ``status.podIP``, ``valueFrom.secretKeyRef`` (``data``
  base64-decoded, ``stringData`` as is, ``optional`` honoured). The repo root is
  appended to ``PYTHONPATH`` (not for an image of ``images``).
- **Volumes**: a ``secret`` volume's keys are written as files (``defaultMode``,
  ``items``) to ``<pod dir>/volumes/<name>``, an ``emptyDir`` is an empty directory
  there; a ``volumeMount`` (with ``subPath``) rewrites every occurrence of its
  ``mountPath`` in ``args`` and plain env ``value`` s to that local path.
- **Refused** (``CreateContainerConfigError``, or ``ContainerCreating`` for volumes):
  other fieldRefs, configMapKeyRef, envFrom, init containers, more than one container,
  no ``command``, other volume kinds, a missing Secret or key that is not optional.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import shutil
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
IMAGE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
FIELD_PATHS = ("metadata.name", "metadata.namespace", "status.podIP")

SecretLookup = Callable[[str, str], dict[str, Any] | None]
"""(namespace, name) → the stored Secret, or None."""


@dataclasses.dataclass(frozen=True)
class Image:
    """An image the kubelet can run: ``root`` holds its files, ``env`` is its ENV (paths
    already under ``root``; ``PATH`` finds its ``python``), ``workdir`` its WORKDIR there."""

    root: Path
    env: Mapping[str, str]
    workdir: Path


class PodConfigError(Exception):
    """The container cannot start yet: ``reason`` and message go to its waiting state."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def config_error(message: str) -> PodConfigError:
    """A ``CreateContainerConfigError`` with ``message``."""
    return PodConfigError("CreateContainerConfigError", message)


@dataclasses.dataclass
class Launch:
    """What to start: the argv, the full environment, the working directory, and
    each mountPath's local path (for commands the kubelet runs in the pod, probes)."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    mounts: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PodSite:
    """A pod as this kubelet places it: its IP and directory, where Secrets are read
    and the URL of the API server (the pod's ``KUBERNETES_SERVICE_*``)."""

    pod: Mapping[str, Any]
    ip: str
    directory: Path
    api_url: str
    secrets: SecretLookup
    images: Mapping[str, Image] = dataclasses.field(default_factory=dict)

    @property
    def image(self) -> Image | None:
        """The container's image when the kubelet has it (else: this process's Python)."""
        return self.images.get(str(self.container.get("image", "")))

    @property
    def namespace(self) -> str:
        """The pod's namespace."""
        return str(self.pod["metadata"]["namespace"])

    @property
    def name(self) -> str:
        """The pod's name."""
        return str(self.pod["metadata"]["name"])

    @property
    def container(self) -> dict[str, Any]:
        """The pod's (first) container."""
        containers: list[dict[str, Any]] = self.pod["spec"]["containers"]
        return containers[0]


# -- pure helpers ----------------------------------------------------------------------


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: ``$$`` is ``$``, unknown references stay."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        end = text.find(")", i + 2) if text.startswith("$(", i) else -1
        if end == -1:
            out.append(text[i])
            i += 1
            continue
        out.append(env.get(text[i + 2 : end], text[i : end + 1]))
        i = end + 1
    return "".join(out)


def substitute_mounts(text: str, mounts: Mapping[str, str]) -> str:
    """Rewrite every mountPath in ``text`` (a whole path component) to its local path."""
    if not mounts:
        return text
    paths = sorted(mounts, key=len, reverse=True)
    pattern = r"(?<![\w.\-])(" + "|".join(map(re.escape, paths)) + r")(?![\w.\-])"
    return re.sub(pattern, lambda match: mounts[match.group(1)], text)


def command_argv(
    words: Iterable[str],
    env: Mapping[str, str],
    mounts: Mapping[str, str],
    image: Image | None = None,
) -> list[str]:
    """A command as run: expanded, mountPaths rewritten, ``python`` → this interpreter
    (with an ``image``: the program as the image's PATH finds it)."""
    argv = [substitute_mounts(expand(word, env), mounts) for word in words]
    if argv and image is not None:
        argv[0] = image_program(image, argv[0])
    elif argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return argv


def image_program(image: Image, program: str) -> str:
    """A container's program in ``image``: under its root if absolute, else on its PATH."""
    if program.startswith("/"):
        local = image.root / program.lstrip("/")
        found = str(local) if os.access(local, os.X_OK) else None
    else:
        found = shutil.which(program, path=image.env.get("PATH", ""))
    if found is None:
        raise PodConfigError(
            "RunContainerError",
            f'exec: "{program}": executable file not found in $PATH of the image '
            f"({image.env.get('PATH', '')})",
        )
    return found


def decoded_secret(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """A Secret's keys and values: ``data`` base64-decoded, ``stringData`` as is."""
    values: dict[str, bytes] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            values[key] = base64.b64decode(value, validate=True)
        except binascii.Error:
            values[key] = str(value).encode()
    for key, value in (secret.get("stringData") or {}).items():
        values[key] = str(value).encode()
    return values


# -- the launch ------------------------------------------------------------------------


def launch_of(site: PodSite) -> Launch:
    """The argv, env and cwd of the pod's container; PodConfigError if it cannot start."""
    check_shape(site)
    container = site.container
    mounts = mount_volumes(site)
    env = container_env(site, mounts)
    words = [*container["command"], *(container.get("args") or [])]
    return Launch(
        argv=command_argv(words, env, mounts, site.image),
        env=full_env(site, env),
        cwd=workdir(site),
        mounts=mounts,
    )


def check_shape(site: PodSite) -> None:
    """Refuse what this kubelet does not run: several containers, init containers..."""
    spec = site.pod["spec"]
    if len(spec["containers"]) != 1 or spec.get("initContainers"):
        raise config_error(
            "the test kubelet runs pods of exactly one container and no init containers"
        )
    if not site.container.get("command"):
        raise config_error(
            "the test kubelet cannot run an image's entrypoint: set the container's command"
        )
    if site.container.get("envFrom"):
        raise config_error("the test kubelet does not support envFrom")


def container_env(site: PodSite, mounts: Mapping[str, str]) -> dict[str, str]:
    """The container's ``env`` resolved in order (values see the variables before them)."""
    env: dict[str, str] = {}
    for variable in site.container.get("env") or []:
        name = variable["name"]
        if "valueFrom" in variable:
            value = value_from(site, name, variable["valueFrom"])
        else:
            value = substitute_mounts(expand(variable.get("value", ""), env), mounts)
        if value is not None:
            env[name] = value
    return env


def value_from(site: PodSite, name: str, source: dict[str, Any]) -> str | None:
    """A fieldRef or secretKeyRef value (None: an optional secret key that is missing)."""
    if "fieldRef" in source:
        return field(site, name, source["fieldRef"]["fieldPath"])
    if "secretKeyRef" in source:
        return secret_key(site, source["secretKeyRef"])
    raise config_error(
        f"env {name}: the test kubelet supports only valueFrom.fieldRef and "
        f"valueFrom.secretKeyRef, not {', '.join(sorted(source))}"
    )


def field(site: PodSite, name: str, path: str) -> str:
    """A fieldRef's value."""
    fields = {"metadata.name": site.name, "metadata.namespace": site.namespace}
    fields["status.podIP"] = site.ip
    if path not in fields:
        raise config_error(
            f"env {name}: the test kubelet supports only fieldRef "
            f"{', '.join(FIELD_PATHS)}, not {path}"
        )
    return fields[path]


def secret_key(site: PodSite, ref: dict[str, Any]) -> str | None:
    """A secretKeyRef's value, with Kubernetes' messages when it is missing."""
    secret = site.secrets(site.namespace, ref["name"])
    optional = bool(ref.get("optional"))
    if secret is None:
        if optional:
            return None
        raise config_error(f'secret "{ref["name"]}" not found')
    values = decoded_secret(secret)
    if ref["key"] not in values:
        if optional:
            return None
        raise config_error(
            f"couldn't find key {ref['key']} in Secret {site.namespace}/{ref['name']}"
        )
    return values[ref["key"]].decode("utf-8", "surrogateescape")


def mount_volumes(site: PodSite) -> dict[str, str]:
    """Write the volumes the container mounts; mountPath → local path."""
    volumes = {volume["name"]: volume for volume in site.pod["spec"].get("volumes") or []}
    mounts: dict[str, str] = {}
    for mount in site.container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise config_error(f'volumeMount "{mount["name"]}": no such volume')
        local = write_volume(site, volume)
        if mount.get("subPath"):
            local = local / mount["subPath"]
        mounts[mount["mountPath"].rstrip("/") or "/"] = str(local)
    return mounts


def write_volume(site: PodSite, volume: dict[str, Any]) -> Path:
    """A volume's local directory: a Secret's files, or an emptyDir."""
    target = site.directory / "volumes" / str(volume["name"])
    target.mkdir(parents=True, exist_ok=True)
    if "emptyDir" in volume:
        return target
    if "secret" not in volume:
        kinds = ", ".join(sorted(set(volume) - {"name"}))
        raise PodConfigError(
            "ContainerCreating",
            f'volume "{volume["name"]}": the test kubelet mounts only secret and emptyDir '
            f"volumes, not {kinds}",
        )
    write_secret_files(site, volume["name"], volume["secret"], target)
    return target


def write_secret_files(site: PodSite, volume: str, source: dict[str, Any], target: Path) -> None:
    """The Secret's keys (or ``items``) as files with ``defaultMode``."""
    name = source.get("secretName", "")
    secret = site.secrets(site.namespace, name)
    if secret is None:
        if source.get("optional"):
            return
        raise PodConfigError(
            "ContainerCreating",
            f'MountVolume.SetUp failed for volume "{volume}" : secret "{name}" not found',
        )
    values = decoded_secret(secret)
    items = source.get("items") or [{"key": key, "path": key} for key in values]
    for item in items:
        if item["key"] not in values:
            raise PodConfigError(
                "ContainerCreating",
                f'MountVolume.SetUp failed for volume "{volume}" : '
                f"couldn't find key {item['key']} in Secret {site.namespace}/{name}",
            )
        path = target / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(values[item["key"]])
        path.chmod(int(item.get("mode", source.get("defaultMode", 0o644))))


def workdir(site: PodSite) -> Path:
    """The cwd: the image's WORKDIR for an image of ``images``, else the pod's own
    directory; the pod's TMPDIR is made inside the pod's directory."""
    (site.directory / "tmp").mkdir(parents=True, exist_ok=True)
    image = site.image
    return image.workdir if image is not None else site.directory


def full_env(site: PodSite, container_env: Mapping[str, str]) -> dict[str, str]:
    """The image's env, what Kubernetes adds, the container's env, and PYTHONPATH (the
    repo appended, unless the pod runs an image of ``images``)."""
    server = urllib.parse.urlsplit(site.api_url)
    image = site.image
    if image is not None:
        env = dict(image.env)
    else:
        env = {key: os.environ[key] for key in IMAGE_ENV if key in os.environ}
    env.update(
        HOSTNAME=site.name,
        KUBERNETES_SERVICE_HOST=server.hostname or "127.0.0.1",
        KUBERNETES_SERVICE_PORT=str(server.port or 80),
        PYTHONUNBUFFERED="1",
        TMPDIR=str(site.directory / "tmp"),
    )
    env.update(container_env)
    if image is None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(REPO)]))
    return env

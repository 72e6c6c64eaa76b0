"""The Dockerfile's invariants, read by the same parser that builds it in
tests/e2e/test_kubernetes_image.py (tests/harness/dockerfile_image.py): a pinned base, a
multi-stage build whose last stage only copies the venv, a fixed non-root numeric user
owning the WORKDIR, ``python`` on PATH being the venv's, a HEALTHCHECK on a real route,
the pod entry point and the worker command installed, a whitelist .dockerignore, and the
default pulsarDockerImageName being this image at the package's version."""

from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from fnworker.runtimes.kubernetes.factory import kubernetes_warnings
from fnworker.runtimes.kubernetes.pod_template import POD_MAIN_MODULE, container
from fnworker.runtimes.kubernetes.settings import KubernetesSettings, settings_from_worker
from fnworker.scheduler.api.worker_routes import ROUTES
from fnworker.scheduler.model.records import FunctionConfig, FunctionRecord
from fnworker.scheduler.settings.worker_config import (
    DEFAULT_FUNCTION_IMAGE,
    RuntimeFactoryConfig,
    WorkerConfig,
)
from tests.harness.dockerfile_image import (
    Stage,
    UnsupportedDockerfile,
    copy_parts,
    dockerignore,
    env_pairs,
    healthcheck,
    instructions,
    let_in,
    run_commands,
    stages,
)

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$")
"""name:MAJOR.MINOR.PATCH[-variant][@sha256:digest]: a full version, never `latest`."""


def final() -> Stage:
    return stages(DOCKERFILE)[-1]


def venv_dir() -> str:
    """The directory the builder makes its virtual environment in."""
    for one in stages(DOCKERFILE)[0].all("RUN"):
        for words in run_commands(one):
            if words[:3] == ["python", "-m", "venv"]:
                return words[3]
    raise AssertionError("the builder stage creates no virtual environment (python -m venv)")


def uid_gid() -> tuple[str, str]:
    (user,) = final().all("USER")
    uid, _, gid = user.value.partition(":")
    return uid, gid


def test_every_base_image_is_pinned_to_a_full_version() -> None:
    bases = [stage.base for stage in stages(DOCKERFILE)]
    assert bases and all(PINNED.match(base) for base in bases), bases
    assert len(set(bases)) == 1, "the venv links to the base interpreter: one base for all"


def test_the_build_is_multi_stage_and_the_last_stage_only_copies_the_venv() -> None:
    builder, *_, last = stages(DOCKERFILE)
    assert builder.name and builder is not last
    venv = venv_dir()
    installs = [
        words
        for one in builder.all("RUN")
        for words in run_commands(one)
        if words[0] == f"{venv}/bin/python" and words[1:4] == ["-m", "pip", "install"]
    ]
    assert len(installs) == 1, "the builder pip-installs the project into its venv once"
    last_runs = " ".join(one.value for one in last.all("RUN"))
    assert "pip" not in last_runs and "venv" not in last_runs
    copied = [copy_parts(one) for one in last.all("COPY")]
    assert (builder.name, [venv], venv) in copied  # same path: a venv is not relocatable


def test_the_user_is_a_fixed_non_root_numeric_uid_owning_the_workdir() -> None:
    uid, gid = uid_gid()
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    runs = [words for one in final().all("RUN") for words in run_commands(one)]
    assert any(words[0] == "useradd" and uid in words for words in runs)
    (workdir,) = final().all("WORKDIR")
    assert ["mkdir", "-p"] == next(w[:2] for w in runs if w[0] == "mkdir")
    made = {path for words in runs if words[0] == "mkdir" for path in words[2:]}
    assert any(path == workdir.value or path.startswith(workdir.value + "/") for path in made)
    assert ["chown", f"{uid}:{gid}", workdir.value] in runs  # WORKDIR alone would be root's


def test_python_and_fnworker_on_path_are_the_venvs() -> None:
    env: dict[str, str] = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    for one in final().all("ENV"):
        env.update(env_pairs(one, env))
    assert env["PATH"].split(":")[0] == f"{venv_dir()}/bin"
    assert final().all("CMD")[-1].value.startswith('["fnworker", ')


def test_the_pod_command_runs_an_installed_module_and_the_worker_command_exists() -> None:
    function = FunctionRecord(fqfn="public/default/f", version=1, config=FunctionConfig())
    command = container(function, KubernetesSettings(), None)["command"]
    assert command == ["python", "-m", POD_MAIN_MODULE]
    assert importlib.util.find_spec(POD_MAIN_MODULE) is not None
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["fnworker"].startswith("fnworker.")
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == ["fnworker*"]
    sources = [src for one in stages(DOCKERFILE)[0].all("COPY") for src in copy_parts(one)[1]]
    assert "fnworker" in sources and "pyproject.toml" in sources


def test_the_healthcheck_asks_the_workers_initialized_route() -> None:
    (found,) = final().all("HEALTHCHECK")
    check = healthcheck(found)
    assert check.command[0] == "python" and {"interval", "timeout", "retries"} <= set(check.options)
    assert "/initialized" in " ".join(check.command)
    assert any(route.path == "/initialized" for route in ROUTES)


def test_dockerignore_lets_in_every_copy_source_and_nothing_else_we_know() -> None:
    allowed, excluded = dockerignore((REPO / ".dockerignore").read_text())
    for stage in stages(DOCKERFILE):
        for one in stage.all("COPY"):
            source_stage, sources, _ = copy_parts(one)
            assert source_stage is not None or all(let_in(src, allowed) for src in sources)
    for left_out in (".venv", ".git", "tests", "state", "bench", "config/examples"):
        assert not let_in(left_out, allowed), left_out
    assert "__pycache__" in excluded


def test_the_default_image_is_this_image_at_the_package_version() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert DEFAULT_FUNCTION_IMAGE == f"fnworker/fnworker:{version}"
    assert RuntimeFactoryConfig().pulsar_docker_image_name == DEFAULT_FUNCTION_IMAGE
    assert KubernetesSettings().pulsar_docker_image_name == DEFAULT_FUNCTION_IMAGE
    assert f"docker build -t {DEFAULT_FUNCTION_IMAGE} ." in DOCKERFILE
    config = WorkerConfig()
    assert not any(
        " image " in w for w in kubernetes_warnings(config, settings_from_worker(config))
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM python:3.11.13-slim\nADD x /x\n", "ADD is not supported"),
        ("FROM python:3.11.13-slim\nRUN apt-get update; apt-get install -y x\n", "&& only"),
        ("FROM python:3.11.13-slim\nHEALTHCHECK CMD curl -f http://x/\n", "exec form"),
        ("FROM ${BASE}\n", "no ARG sets"),
        ("FROM python:3.11.13-slim\nCOPY --chown=1:1 a /a\n", "--chown=1:1 is not supported"),
    ],
)
def test_the_parser_refuses_what_it_cannot_reproduce(text: str, message: str) -> None:
    with pytest.raises(UnsupportedDockerfile, match=re.escape(message)):
        for stage in stages(text):
            for one in stage.instructions:
                {"RUN": run_commands, "HEALTHCHECK": healthcheck, "COPY": copy_parts}.get(
                    one.keyword, lambda one: None
                )(one)


def test_continuations_and_comments_are_joined_as_docker_does() -> None:
    text = "FROM a:1.2.3\n# c\nRUN x \\\n    # inside\n    && y\n"
    (run,) = [one for one in instructions(text) if one.keyword == "RUN"]
    assert [shlex.join(words) for words in run_commands(run)] == ["x", "y"]

"""The Dockerfile reproducer (tests/harness/dockerfile_image.py) on small Dockerfiles:
COPY as Docker copies (a directory's contents, files into a ``dir/``, .dockerignore's
exclusions), ENV expansion and paths moved under the root, what the last stage does not
copy removed, and one sentence for what it cannot reproduce. No pip, no venv: these
test the harness, not fnworker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.dockerfile_image import UnsupportedDockerfile, build_image

IGNORE = "*\n!pkg/\n!a.txt\n!b.txt\n**/__pycache__\n**/*.pyc\n"


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A build context: a package with a cache directory, two files, one left out."""
    root = tmp_path / "context"
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "pkg" / "mod.pyc").write_bytes(b"")
    (root / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"")
    (root / "a.txt").write_text("a")
    (root / "b.txt").write_text("b")
    (root / "secret.txt").write_text("s")
    (root / ".dockerignore").write_text(IGNORE)
    return root


def build(context: Path, tmp_path: Path, text: str) -> tuple[Path, dict[str, str], Path]:
    (context / "Dockerfile").write_text(text)
    image = build_image(context / "Dockerfile", context, tmp_path / "root")
    return image.root, image.env, image.workdir


def test_copy_stages_env_and_workdir_as_docker_does(context: Path, tmp_path: Path) -> None:
    root, env, workdir = build(
        context, tmp_path,
        "ARG BASE=python:3.11.13-slim\nFROM ${BASE} AS builder\nWORKDIR /src\n"
        "COPY pkg ./pkg\nCOPY a.txt b.txt /opt/app/\nRUN mkdir -p /opt/app/data\n"
        "FROM ${BASE}\nCOPY --from=builder /opt/app /opt/app\nCOPY a.txt /etc/app.txt\n"
        "ENV PATH=/opt/app/data:$PATH HOMEDIR=/opt/app MODE=1\nWORKDIR /opt/app\nUSER 7:7\n",
    )  # fmt: skip
    assert sorted(p.name for p in (root / "opt" / "app").iterdir()) == ["a.txt", "b.txt", "data"]
    assert (root / "etc" / "app.txt").read_text() == "a"
    assert not (root / "src").exists()  # the builder's WORKDIR was not copied
    assert env["PATH"].split(":")[0] == str(root / "opt" / "app" / "data")
    assert env["PATH"].split(":")[1] == "/usr/local/sbin"  # the base image's stays as is
    assert env["HOMEDIR"] == str(root / "opt" / "app") and env["MODE"] == "1"
    assert workdir == root / "opt" / "app"


def test_a_directory_copies_its_contents_without_caches(context: Path, tmp_path: Path) -> None:
    root, _, _ = build(context, tmp_path, "FROM a:1.2.3\nCOPY pkg /app/\n")
    assert sorted(p.name for p in (root / "app").iterdir()) == ["mod.py"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM a:1.2.3\nCOPY secret.txt /s\n", ".dockerignore leaves out secret.txt"),
        ("FROM a:1.2.3 AS b\nFROM a:1.2.3\nCOPY --from=b /x /y\n", "copy a path to the same"),
        ("FROM a:1.2.3\nRUN apt-get install -y curl\n", "cannot reproduce RUN apt-get"),
    ],
)
def test_what_it_cannot_reproduce_is_one_sentence(
    context: Path, tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(UnsupportedDockerfile, match=message):
        build(context, tmp_path, text)

"""The repo's Dockerfile, read and reproduced without Docker: its one job is building the
image's files the way the Dockerfile builds them into a scratch directory (the "image
root"), so tests can run the worker and function pods from them
(tests/e2e/test_kubernetes_image.py) and check its invariants (tests/unit/test_dockerfile.py).
Parsing is pure; ``build_image`` does file and process I/O.

It knows a small subset of Dockerfile, on purpose: anything else fails with one sentence
naming the line, so a change to the Dockerfile cannot silently escape the tests.

- ``ARG`` before the first ``FROM`` (defaults, used as ``${NAME}`` in ``FROM``);
  ``FROM image [AS name]``; ``WORKDIR``, ``ENV k=v ...``, ``USER``, ``EXPOSE``, ``CMD``,
  ``HEALTHCHECK [--options] CMD [...]`` (exec form), ``LABEL``.
- ``COPY src... dest`` from the context (``.dockerignore``: ``*``, ``!path`` and
  ``**/name`` lines) and ``COPY --from=stage path path`` (every stage builds in the same
  root, so the path must be the same on both sides: a virtual environment is not
  relocatable, in Docker either).
- ``RUN`` lines of ``&&``-joined commands, each one of: ``python -m venv DIR`` (run with
  the test's interpreter, standing in for the base image's), ``DIR/bin/python -m pip
  install ...`` (run as written, image paths moved under the root), ``mkdir -p ...``
  (made under the root), ``groupadd``/``useradd``/``chown`` (recorded, not run: the test
  runs as its own user; ``useradd --home-dir`` gives HOME).

What the base image provides is stood in for: its ``PATH`` is Docker's default
(``/usr/local/sbin:...:/bin``), its ``python`` is ``sys.executable``. After the last stage,
what earlier stages made and the last one did not copy is removed (``/src``...). In the
image's env an absolute path (or a ``PATH`` entry) that exists under the root is moved
under it; others (the base image's ``/usr/local/bin``) stay as written.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""Docker's default PATH, which the python images keep: the stand-in for ``$PATH``."""
RECORDED_ONLY = ("groupadd", "useradd", "chown")
KEYWORDS = ("ARG", "FROM", "RUN", "COPY", "WORKDIR", "ENV", "USER", "EXPOSE", "CMD")
KEYWORDS_MORE = ("HEALTHCHECK", "LABEL")


class UnsupportedDockerfile(Exception):
    """A Dockerfile line the parser does not know how to reproduce."""


@dataclasses.dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword (upper case), the rest of its line(s), its line number."""

    keyword: str
    value: str
    line: int


@dataclasses.dataclass(frozen=True)
class Stage:
    """A build stage: its base image (``ARG`` defaults resolved), its name, its instructions."""

    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        """This stage's instructions of ``keyword``."""
        return [one for one in self.instructions if one.keyword == keyword]


@dataclasses.dataclass(frozen=True)
class Healthcheck:
    """The HEALTHCHECK: its options (``--interval`` ...) and exec-form command."""

    options: dict[str, str]
    command: list[str]


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    """An image's files under ``root`` and how a container of it starts: the env (paths
    under the root), the working directory (under the root), the user as written."""

    root: Path
    env: dict[str, str]
    workdir: Path
    user: str
    cmd: list[str]
    healthcheck: Healthcheck | None

    def inside(self, path: str) -> Path:
        """An absolute path of the image, under the root."""
        return inside(self.root, path)

    def which(self, command: str) -> Path:
        """Where the image's PATH finds ``command`` (as a container's exec would)."""
        found = shutil.which(command, path=self.env.get("PATH", BASE_PATH))
        if found is None:
            raise FileNotFoundError(f"{command} is not on the image's PATH {self.env.get('PATH')}")
        return Path(found)


# -- parsing (pure) -----------------------------------------------------------------------


def instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile: comments dropped, ``\\`` continuations joined."""
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        continued = line.endswith("\\")
        pending.append(line[:-1].strip() if continued else line)
        if not continued:
            keyword, _, value = " ".join(pending).partition(" ")
            found.append(Instruction(keyword.upper(), value.strip(), start))
            pending = []
    if pending:
        raise UnsupportedDockerfile(f"line {start}: a continuation runs past the end of the file")
    return found


def stages(text: str) -> list[Stage]:
    """The build stages, with ``ARG`` defaults (declared before the first FROM) expanded."""
    args: dict[str, str] = {}
    result: list[Stage] = []
    base, name, body = "", None, list[Instruction]()
    for one in instructions(text):
        if one.keyword not in KEYWORDS + KEYWORDS_MORE:
            raise UnsupportedDockerfile(f"line {one.line}: {one.keyword} is not supported")
        if one.keyword == "ARG" and not result and not base:
            key, _, default = one.value.partition("=")
            args[key.strip()] = default.strip()
            continue
        if one.keyword == "FROM":
            if base:
                result.append(Stage(base, name, tuple(body)))
            base, name, body = from_line(one, args), None, []
            words = one.value.split()
            if len(words) == 3 and words[1].upper() == "AS":
                name = words[2]
            continue
        if not base:
            raise UnsupportedDockerfile(f"line {one.line}: {one.keyword} before any FROM")
        body.append(one)
    if base:
        result.append(Stage(base, name, tuple(body)))
    return result


def from_line(one: Instruction, args: dict[str, str]) -> str:
    """A FROM line's image, ``${ARG}``/``$ARG`` expanded from the ARG defaults."""
    words = one.value.split()
    if len(words) not in (1, 3) or words[0].startswith("--"):
        raise UnsupportedDockerfile(f"line {one.line}: FROM {one.value} is not supported")

    def value_of(match: re.Match[str]) -> str:
        key = match.group(1) or match.group(2)
        if key not in args:
            raise UnsupportedDockerfile(f"line {one.line}: FROM uses ${key}, which no ARG sets")
        return args[key]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value_of, words[0])


def env_pairs(one: Instruction, current: dict[str, str]) -> dict[str, str]:
    """``ENV k=v k2=v2``: values with ``$VAR``/``${VAR}`` expanded from ``current``."""
    pairs: dict[str, str] = {}
    for word in shlex.split(one.value):
        key, sep, value = word.partition("=")
        if not sep:
            raise UnsupportedDockerfile(f"line {one.line}: write ENV as key=value, not {word}")
        pairs[key] = re.sub(
            r"\$\{(\w+)\}|\$(\w+)",
            lambda match: current.get(match.group(1) or match.group(2), ""),
            value,
        )
    return pairs


def exec_form(one: Instruction, value: str | None = None) -> list[str]:
    """A JSON exec-form command (``["python", "-c", ...]``); shell form is refused."""
    text = one.value if value is None else value
    try:
        words = json.loads(text)
    except json.JSONDecodeError:
        words = None
    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
        raise UnsupportedDockerfile(f"line {one.line}: {one.keyword} must use the exec form")
    return words


def healthcheck(one: Instruction) -> Healthcheck:
    """A HEALTHCHECK's ``--options`` and its exec-form ``CMD``."""
    options: dict[str, str] = {}
    rest = one.value
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        key, _, value = option[2:].partition("=")
        options[key] = value
        rest = rest.strip()
    keyword, _, command = rest.partition(" ")
    if keyword.upper() != "CMD":
        raise UnsupportedDockerfile(f"line {one.line}: HEALTHCHECK must be CMD [...]")
    return Healthcheck(options, exec_form(one, command.strip()))


def run_commands(one: Instruction) -> list[list[str]]:
    """A RUN line's commands (``&&``-joined); other shell syntax is refused."""
    if one.value.startswith("["):
        return [exec_form(one)]
    commands: list[list[str]] = [[]]
    lexer = shlex.shlex(one.value, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    for word in lexer:
        if word == "&&":
            commands.append([])
        elif word and set(word) <= set("();<>|&"):
            raise UnsupportedDockerfile(f"line {one.line}: RUN may join commands with && only")
        else:
            commands[-1].append(word)
    if not all(commands):
        raise UnsupportedDockerfile(f"line {one.line}: an empty command in RUN")
    return commands


def copy_parts(one: Instruction) -> tuple[str | None, list[str], str]:
    """A COPY's ``--from`` stage (None: the context), sources and destination."""
    words = one.value.split()
    source_stage = None
    while words and words[0].startswith("--"):
        option = words.pop(0)
        if not option.startswith("--from="):
            raise UnsupportedDockerfile(f"line {one.line}: COPY {option} is not supported")
        source_stage = option.removeprefix("--from=")
    if len(words) < 2:
        raise UnsupportedDockerfile(f"line {one.line}: COPY needs a source and a destination")
    return source_stage, words[:-1], words[-1]


def useradd_home(words: list[str]) -> str | None:
    """``useradd``'s ``--home-dir`` (or ``-d``)."""
    for index, word in enumerate(words[:-1]):
        if word in ("--home-dir", "-d"):
            return words[index + 1]
    return None


def dockerignore(text: str) -> tuple[list[str], list[str]]:
    """A whitelist ``.dockerignore``: the paths ``!``-let in, the names excluded anywhere
    (``**/name``). Anything but ``*`` first is refused."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines or lines[0] != "*":
        raise UnsupportedDockerfile(".dockerignore must start with * (a whitelist)")
    allowed, excluded = [], []
    for line in lines[1:]:
        if line.startswith("!"):
            allowed.append(line[1:].strip("/"))
        elif line.startswith("**/"):
            excluded.append(line[3:])
        else:
            raise UnsupportedDockerfile(f".dockerignore line {line} is not supported")
    return allowed, excluded


def let_in(path: str, allowed: list[str]) -> bool:
    """Whether a context path (relative) is inside one the whitelist lets in."""
    clean = str(PurePosixPath(path))
    return any(clean == one or clean.startswith(one + "/") for one in allowed)


def inside(root: Path, path: str) -> Path:
    """An absolute image path, under ``root``."""
    return root / str(PurePosixPath("/", path)).lstrip("/")


# -- building (I/O) -----------------------------------------------------------------------


@dataclasses.dataclass
class _Build:
    """What the build holds while it runs the stages."""

    root: Path
    context: Path
    allowed: list[str]
    excluded: list[str]
    made: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    kept: list[str] = dataclasses.field(default_factory=list)
    stage_index: int = 0
    workdir: str = "/"
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    user: str = "0"
    home: str | None = None
    cmd: list[str] = dataclasses.field(default_factory=list)
    check: Healthcheck | None = None
    names: dict[str, int] = dataclasses.field(default_factory=dict)


def build_image(dockerfile: Path, context: Path, root: Path) -> BuiltImage:
    """Build the Dockerfile's final stage into ``root`` (see the module docstring)."""
    allowed, excluded = dockerignore((context / ".dockerignore").read_text())
    root.mkdir(parents=True, exist_ok=True)
    build = _Build(root=root, context=context, allowed=allowed, excluded=excluded)
    all_stages = stages(dockerfile.read_text())
    for index, stage in enumerate(all_stages):
        build.stage_index, build.workdir = index, "/"
        build.env, build.user = {"PATH": BASE_PATH}, "0"
        build.names[stage.name or str(index)] = index
        for one in stage.instructions:
            apply(build, one)
    drop_unkept(build, last=len(all_stages) - 1)
    return BuiltImage(
        root=root,
        env=image_env(build),
        workdir=inside(root, build.workdir),
        user=build.user,
        cmd=build.cmd,
        healthcheck=build.check,
    )


def apply(build: _Build, one: Instruction) -> None:
    """One instruction of the current stage."""
    if one.keyword == "WORKDIR":
        build.workdir = str(PurePosixPath(build.workdir, one.value))
        made(build, build.workdir).mkdir(parents=True, exist_ok=True)
    elif one.keyword == "ENV":
        build.env.update(env_pairs(one, build.env))
    elif one.keyword == "USER":
        build.user = one.value
    elif one.keyword == "CMD":
        build.cmd = exec_form(one)
    elif one.keyword == "HEALTHCHECK":
        build.check = healthcheck(one)
    elif one.keyword == "COPY":
        copy(build, one)
    elif one.keyword == "RUN":
        for command in run_commands(one):
            run(build, one, command)
    elif one.keyword not in ("EXPOSE", "LABEL", "ARG"):
        raise UnsupportedDockerfile(f"line {one.line}: {one.keyword} is not supported")


def made(build: _Build, path: str) -> Path:
    """Record that the current stage made image path ``path``; its place under the root."""
    build.made.setdefault(build.stage_index, []).append(path)
    return inside(build.root, path)


def image_path(build: _Build, path: str) -> str:
    """A path as the image sees it: absolute, or relative to the WORKDIR."""
    return str(PurePosixPath(build.workdir, path))


def copy(build: _Build, one: Instruction) -> None:
    """COPY from the context (through .dockerignore) or from an earlier stage."""
    source_stage, sources, destination = copy_parts(one)
    target = image_path(build, destination)
    if source_stage is not None:
        if source_stage not in build.names or sources != [target]:
            raise UnsupportedDockerfile(
                f"line {one.line}: COPY --from must name an earlier stage and copy a path to "
                "the same path (every stage builds in one root; a venv is not relocatable)"
            )
        build.kept.append(target)
        return
    into_directory = destination.endswith("/") or len(sources) > 1
    for source in sources:
        if not let_in(source, build.allowed):
            raise UnsupportedDockerfile(f"line {one.line}: .dockerignore leaves out {source}")
        origin = build.context / source
        if origin.is_dir():  # as Docker: the directory's contents, not the directory
            local = made(build, target)
            ignore = shutil.ignore_patterns(*build.excluded)
            shutil.copytree(origin, local, ignore=ignore, dirs_exist_ok=True)
            continue
        name = PurePosixPath(source).name
        local = made(build, str(PurePosixPath(target, name)) if into_directory else target)
        local.parent.mkdir(parents=True, exist_ok=True)
        if not any(fnmatch.fnmatch(name, pattern) for pattern in build.excluded):
            shutil.copy2(origin, local)


def run(build: _Build, one: Instruction, words: list[str]) -> None:
    """One command of a RUN line, reproduced under the root (module docstring)."""
    program = PurePosixPath(words[0]).name
    if program in RECORDED_ONLY:
        if program == "useradd":
            build.home = useradd_home(words)
        return
    if words[:3] == ["python", "-m", "venv"] and len(words) == 4:
        argv = [sys.executable, "-m", "venv", str(made(build, words[3]))]
    elif words[0] == "mkdir" and words[1:2] == ["-p"]:
        for path in words[2:]:
            made(build, image_path(build, path)).mkdir(parents=True, exist_ok=True)
        return
    elif program.startswith("python") and words[1:4] == ["-m", "pip", "install"]:
        argv = [moved(build, word) for word in words]
    else:
        raise UnsupportedDockerfile(
            f"line {one.line}: the test cannot reproduce RUN {shlex.join(words)}; teach "
            "tests/harness/dockerfile_image.py"
        )
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH",)}
    env.pop("VIRTUAL_ENV", None)
    env.update({key: value for key, value in build.env.items() if key != "PATH"})
    done = subprocess.run(
        argv, env=env, cwd=inside(build.root, build.workdir), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"line {one.line}: {shlex.join(argv)} exited with {done.returncode}:\n"
            f"{(done.stdout + done.stderr)[-4000:]}"
        )


def moved(build: _Build, word: str) -> str:
    """A command word: an absolute image path moves under the root, others stay."""
    return str(inside(build.root, word)) if word.startswith("/") else word


def drop_unkept(build: _Build, last: int) -> None:
    """Remove what earlier stages made that the last stage neither copied nor made."""
    keep = [*build.kept, *build.made.get(last, [])]
    for stage, paths in build.made.items():
        if stage == last:
            continue
        for path in paths:
            if not any(path == one or path.startswith(one.rstrip("/") + "/") for one in keep):
                shutil.rmtree(inside(build.root, path), ignore_errors=True)


def image_env(build: _Build) -> dict[str, str]:
    """The last stage's env: image paths that exist under the root moved there."""
    env = {key: moved_if_there(build.root, value) for key, value in build.env.items()}
    env["PATH"] = ":".join(moved_if_there(build.root, one) for one in build.env["PATH"].split(":"))
    env.setdefault("HOME", str(inside(build.root, build.home or build.workdir)))
    return env


def moved_if_there(root: Path, value: str) -> str:
    """An absolute path that exists under the root, moved there; anything else as is."""
    if value.startswith("/") and inside(root, value).exists():
        return str(inside(root, value))
    return value

"""Loader and package checks against real package files (.py, .zip, wheels in deps/)."""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from fnworker.runtimes.instance.loader import PackageError, check_package, load_function

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "exclamation_function.py"
FUNCTIONS = ROOT / "tests" / "fixtures" / "functions"


def zip_folder(folder: Path, target: Path, prefix: str = "") -> Path:
    """Zip every file under ``folder`` with names ``prefix + relative path``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                archive.write(file, prefix + file.relative_to(folder).as_posix())
    return target


def copy_to(source: Path, folder: Path, name: str | None = None) -> Path:
    """A private copy of a package, as the worker gives each instance start."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(source, folder / (name or source.name)))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- check_package ---------------------------------------------------------------


def test_check_accepts_the_unmodified_example() -> None:
    check_package(EXAMPLE, "exclamation_function.ExclamationFunction")


def test_check_accepts_a_plain_function_and_a_process_module() -> None:
    check_package(FUNCTIONS / "plain_functions.py", "plain_functions.shout")
    check_package(FUNCTIONS / "plain_functions.py", "plain_functions")


def test_check_names_the_missing_class() -> None:
    with pytest.raises(PackageError) as raised:
        check_package(EXAMPLE, "exclamation_function.Nope")
    assert "'Nope' is not defined in module 'exclamation_function'" in str(raised.value)


def test_check_names_a_module_the_single_file_does_not_hold() -> None:
    with pytest.raises(PackageError) as raised:
        check_package(EXAMPLE, "other_module.ExclamationFunction", "exclamation_function.py")
    assert "module 'other_module' is not in package 'exclamation_function.py'" in str(raised.value)


def test_check_of_a_temporary_file_trusts_the_original_name(tmp_path: Path) -> None:
    opaque = copy_to(EXAMPLE, tmp_path, "package")
    check_package(opaque, "exclamation_function.ExclamationFunction")
    with pytest.raises(PackageError):
        check_package(opaque, "exclamation_function.ExclamationFunction", "renamed.py")


def test_check_reports_syntax_errors_with_file_and_line(tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.py", "import os\n\ndef process(input:\n    return input\n")
    with pytest.raises(PackageError) as raised:
        check_package(broken, "broken.process")
    message = str(raised.value)
    assert "broken.py" in message and "line 3" in message
    assert message.count(".") <= 2 and "\n" not in message


def test_check_finds_modules_in_the_zip_src_layout(tmp_path: Path) -> None:
    package = zip_folder(FUNCTIONS / "zipped", tmp_path / "zipped.zip", prefix="zipped/")
    check_package(package, "zipped_function")
    check_package(package, "zipped_function.process")
    check_package(package, "helper.decorate")
    with pytest.raises(PackageError) as raised:
        check_package(package, "missing_module.Fn")
    assert "module 'missing_module' is not in package 'zipped.zip'" in str(raised.value)
    assert "zipped/src/" in str(raised.value)


def test_check_reports_a_syntax_error_inside_a_zip(tmp_path: Path) -> None:
    write(tmp_path / "src" / "fn" / "src" / "bad.py", "x = 1\ny = (\n")
    package = zip_folder(tmp_path / "src", tmp_path / "fn.zip")
    with pytest.raises(PackageError) as raised:
        check_package(package, "bad.Thing")
    assert "fn/src/bad.py" in str(raised.value) and "line 2" in str(raised.value)


def test_check_rejects_an_empty_class_name_and_a_module_without_process() -> None:
    with pytest.raises(PackageError, match="className '' is not valid"):
        check_package(EXAMPLE, "")
    with pytest.raises(PackageError, match="defines no 'process' function"):
        check_package(EXAMPLE, "exclamation_function")


def test_check_counts_conditional_and_imported_definitions(tmp_path: Path) -> None:
    source = "try:\n    from json import dumps as Fn\nexcept ImportError:\n    class Fn: pass\n"
    check_package(write(tmp_path / "cond.py", source), "cond.Fn")


# -- load_function ------------------------------------------------------------------


def test_load_runs_the_example_class_with_a_context(tmp_path: Path) -> None:
    loaded = load_function(
        copy_to(EXAMPLE, tmp_path), "exclamation_function.ExclamationFunction", "t1"
    )
    try:
        assert loaded.takes_context
        assert loaded.handler("hello", None) == "hello!"
        assert loaded.module.__name__ != "exclamation_function"
    finally:
        loaded.unload()
    assert loaded.module.__name__ not in sys.modules


def test_load_plain_function_and_process_module(tmp_path: Path) -> None:
    package = copy_to(FUNCTIONS / "plain_functions.py", tmp_path)
    plain = load_function(package, "plain_functions.shout", "t2")
    module_form = load_function(package, "plain_functions", "t3")
    try:
        assert not plain.takes_context and plain.handler("abc") == "ABC"
        assert not module_form.takes_context and module_form.handler("abc") == "<abc>"
    finally:
        plain.unload()
        module_form.unload()


def test_load_zip_unpacks_next_to_the_package_and_cleans_up(tmp_path: Path) -> None:
    package = zip_folder(FUNCTIONS / "zipped", tmp_path / "start" / "zipped.zip", prefix="zipped/")
    loaded = load_function(package, "zipped_function", "t4")
    try:
        assert loaded.handler("x") == "[one] x"
        assert loaded.unpack_dir is not None and loaded.unpack_dir.parent == package.parent
        assert any(path.startswith(str(loaded.unpack_dir)) for path in sys.path)
    finally:
        loaded.unload()
    assert not loaded.unpack_dir.exists()
    assert not any(path.startswith(str(loaded.unpack_dir)) for path in sys.path)


def test_new_code_with_same_module_names_takes_effect_in_this_process(tmp_path: Path) -> None:
    old = zip_folder(FUNCTIONS / "zipped", tmp_path / "v1" / "zipped.zip", prefix="zipped/")
    new = zip_folder(FUNCTIONS / "zipped_v2", tmp_path / "v2" / "zipped.zip", prefix="zipped/")
    first = load_function(old, "zipped_function", "fn:0:v1")
    second = load_function(new, "zipped_function", "fn:0:v2")
    try:
        assert second.handler("x") == "[two] x"
        assert first.handler("x") == "[one] x"
    finally:
        first.unload()
        second.unload()


def test_load_uses_dependency_wheels_from_deps(tmp_path: Path) -> None:
    wheel = tmp_path / "build" / "fn" / "deps" / "tinydep-1.0-py3-none-any.whl"
    wheel.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("tinydep_for_fnworker/__init__.py", "ANSWER = 42\n")
        archive.writestr("tinydep-1.0.dist-info/METADATA", "Name: tinydep\nVersion: 1.0\n")
    write(
        tmp_path / "build" / "fn" / "src" / "uses_dep.py",
        "import tinydep_for_fnworker\n\ndef process(input):\n"
        "    return f'{input}={tinydep_for_fnworker.ANSWER}'\n",
    )
    package = zip_folder(tmp_path / "build", tmp_path / "start" / "fn.zip")
    loaded = load_function(package, "uses_dep", "t5")
    try:
        assert loaded.handler("answer") == "answer=42"
    finally:
        loaded.unload()
    assert "tinydep_for_fnworker" not in sys.modules


def test_load_errors_are_one_sentence(tmp_path: Path) -> None:
    source = (
        "raise RuntimeError('no database')\n\n"
        "class Fn:\n    def process(self, i, c):\n        return i\n"
    )
    failing_import = write(tmp_path / "a" / "failing.py", source)
    with pytest.raises(PackageError) as raised:
        load_function(failing_import, "failing.Fn", "t6")
    assert str(raised.value) == (
        "importing module 'failing' of package 'failing.py' raised RuntimeError: no database"
    )
    ctor = (
        "class Fn:\n    def __init__(self, needed):\n        pass\n"
        "    def process(self, i, c):\n        return i\n"
    )
    needs_args = write(tmp_path / "b" / "needs_args.py", ctor)
    with pytest.raises(PackageError, match=r"creating needs_args.Fn\(\) raised TypeError"):
        load_function(needs_args, "needs_args.Fn", "t7")
    assert not [
        name for name in sys.modules if name.startswith(("failing__fnw", "needs_args__fnw"))
    ]

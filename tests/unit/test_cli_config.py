"""``fnworker functions create|update`` flags (pulsar-admin's names) and config files
turned into a FunctionConfig; the parser's flag names and defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fnworker.scheduler.cli.function_config import (
    CliError,
    config_from_args,
    function_names,
    load_config_file,
)
from fnworker.scheduler.cli.parser import build_parser
from fnworker.scheduler.model.records import Resources


def parse(*argv: str, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return build_parser(environ or {}).parse_args(["functions", *argv])


def test_pulsar_admin_create_flags_fill_the_config() -> None:
    args = parse(
        "create",
        "--tenant",
        "t",
        "--namespace",
        "ns",
        "--name",
        "ex",
        "--py",
        "examples/exclamation_function.py",
        "--classname",
        "exclamation_function.ExclamationFunction",
        "--inputs",
        "in1, in2",
        "--output",
        "out",
        "--log-topic",
        "logs",
        "--parallelism",
        "3",
        "--user-config",
        '{"greeting": "hi"}',
        "--secrets",
        '{"pw": "x"}',
        "--processing-guarantees",
        "ATMOST_ONCE",
        "--custom-serde-inputs",
        '{"in1": "S"}',
        "--output-serde-classname",
        "O",
        "--max-message-retries",
        "2",
        "--dead-letter-topic",
        "dlq",
        "--subs-name",
        "sub",
        "--retain-ordering",
        "--auto-ack",
        "false",
        "--cpu",
        "0.5",
        "--ram",
        "1000",
        "--disk",
        "2000",
        "--custom-runtime-options",
        '{"a": 1}',
    )
    config = config_from_args(args)
    assert (config.tenant, config.namespace, config.name) == ("t", "ns", "ex")
    assert config.py == "examples/exclamation_function.py"
    assert config.class_name == "exclamation_function.ExclamationFunction"
    assert config.inputs == ["in1", "in2"]
    assert (config.output, config.log_topic, config.parallelism) == ("out", "logs", 3)
    assert (config.user_config, config.secrets) == ({"greeting": "hi"}, {"pw": "x"})
    assert config.processing_guarantees == "ATMOST_ONCE"
    assert config.custom_serde_inputs == {"in1": "S"}
    assert config.output_serde_class_name == "O"
    assert (config.max_message_retries, config.dead_letter_topic, config.sub_name) == (
        2,
        "dlq",
        "sub",
    )
    assert (config.retain_ordering, config.auto_ack) == (True, False)
    assert config.resources == Resources(cpu=0.5, ram=1000, disk=2000)
    assert config.custom_runtime_options == '{"a": 1}'


def test_flags_not_given_stay_unset() -> None:
    config = config_from_args(parse("update", "--name", "ex", "--parallelism", "2"))
    assert config.parallelism == 2
    assert config.auto_ack is None and config.retain_ordering is None and config.resources is None
    assert (config.tenant, config.namespace) == ("public", "default")


def test_a_yaml_file_is_read_and_flags_override_it(tmp_path: Path) -> None:
    path = tmp_path / "fn.yaml"
    path.write_text(
        "tenant: t\nnamespace: ns\nname: ex\nclassName: m.C\ninputs: [a, b]\nparallelism: 2\n"
        "resources: {cpu: 2.0, ram: 5}\nuserConfig: {k: v}\n"
    )
    args = parse("create", "--function-config-file", str(path), "--parallelism", "4", "--ram", "9")
    config = config_from_args(args, load_config_file(str(path)))
    assert (config.tenant, config.namespace, config.name) == ("t", "ns", "ex")
    assert (config.class_name, config.inputs, config.parallelism) == ("m.C", ["a", "b"], 4)
    assert config.resources == Resources(cpu=2.0, ram=9)
    assert config.user_config == {"k": "v"}


def test_a_json_file_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "fn.json"
    path.write_text(json.dumps({"className": "m.C", "inputs": ["a"]}))
    config = config_from_args(parse("create", "--name", "x"), load_config_file(str(path)))
    assert config.class_name == "m.C"


def test_an_unknown_key_in_the_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(CliError) as caught:
        config_from_args(parse("create", "--name", "x"), {"clasName": "m.C"})
    assert str(caught.value).startswith(
        "function config field 'clasName' is not a FunctionConfig field (did you mean className?)"
    )


@pytest.mark.parametrize("content", ["- a\n- b\n", "a: [b\n"])
def test_a_file_that_is_not_a_mapping_is_an_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "fn.yaml"
    path.write_text(content)
    with pytest.raises(CliError) as caught:
        load_config_file(str(path))
    assert str(caught.value).startswith(f"--function-config-file {path}")


def test_a_missing_file_is_an_error() -> None:
    with pytest.raises(CliError):
        load_config_file("/nonexistent/fn.yaml")


def test_fqfn_sets_all_three_names_and_excludes_the_flags() -> None:
    assert function_names(parse("get", "--fqfn", "t/ns/ex")) == ("t", "ns", "ex")
    with pytest.raises(CliError) as caught:
        function_names(parse("get", "--fqfn", "t/ns/ex", "--name", "ex"))
    assert "--fqfn cannot be combined" in str(caught.value)
    with pytest.raises(CliError):
        function_names(parse("get", "--fqfn", "t/ex"))


def test_a_name_is_required_or_inferred_from_the_class_name() -> None:
    with pytest.raises(CliError) as caught:
        function_names(parse("get"))
    assert str(caught.value).startswith("--name is required")
    config = config_from_args(
        parse("create", "--classname", "exclamation_function.ExclamationFunction")
    )
    assert config.name == "ExclamationFunction"


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--user-config", "not json"),
        ("--secrets", "[1]"),
        ("--auto-ack", "maybe"),
        ("--parallelism", "two"),
        ("--processing-guarantees", "SOMETIMES"),
    ],
)
def test_bad_flag_values_are_usage_errors_naming_the_flag(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("create", "--name", "x", flag, value)
    assert caught.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_admin_url_defaults_to_the_env_then_the_local_worker() -> None:
    assert parse("list").admin_url == "http://127.0.0.1:6750"
    assert parse("list", environ={"FNWORKER_ADMIN_URL": "http://w:1"}).admin_url == "http://w:1"
    assert parse("list", "--admin-url", "http://x:2").admin_url == "http://x:2"


def test_instance_trigger_and_download_flags() -> None:
    assert parse("status", "--name", "ex", "--instance-id", "2").instance_id == 2
    trigger = parse("trigger", "--name", "ex", "--trigger-value", "hello", "--topic", "in")
    assert (trigger.trigger_value, trigger.topic) == ("hello", "in")
    assert (
        parse("download", "--name", "ex", "--destination-file", "/tmp/x").destination_file
        == "/tmp/x"
    )


def test_worker_commands_parse() -> None:
    parser = build_parser({})
    standalone = parser.parse_args(
        ["standalone", "--state-dir", "s", "--port", "7000", "--demo", "--demo-messages", "5"]
    )
    assert (standalone.state_dir, standalone.port, standalone.demo, standalone.demo_messages) == (
        "s",
        7000,
        True,
        5,
    )
    assert parser.parse_args(["worker", "--config", "w.yml"]).config == "w.yml"

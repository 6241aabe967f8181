"""Settings: defaults < file < environment; every invalid value is one line naming key, source and value."""

from __future__ import annotations

from dataclasses import fields

import pytest

from stream.errors import SettingsError
from stream.settings import Settings, describe_settings, load_settings


def write(tmp_path, text: str):
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


def error_of(path=None, env=None) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(path, env=env or {})
    message = str(info.value)
    assert "\n" not in message, message
    return message


def test_defaults_without_file_or_environment():
    settings = load_settings(None, env={})
    assert settings.broker_url == "kafka://127.0.0.1:9092"
    assert settings.window == 72 * 3_600_000 and settings.allowed_lateness == 5 * 60_000
    assert settings.broker_session_timeout == 10_000 and settings.webhook_url is None
    assert settings.broker_bootstrap == ["127.0.0.1:9092"]


def test_file_overrides_defaults_and_environment_overrides_file(tmp_path):
    path = write(tmp_path, "broker_url: kafka://10.0.0.1:9092\nwindow: 2h\ntopic_partitions: 6\napp_id: from-file\n")
    from_file = load_settings(path, env={})
    assert (from_file.broker_url, from_file.window, from_file.topic_partitions) == ("kafka://10.0.0.1:9092",
                                                                                     7_200_000, 6)
    env = {"FUNDFLOW_WINDOW": "90m", "FUNDFLOW_APP_ID": "from-env", "UNRELATED": "x", "FUNDFLOW_NOT_A_SETTING": "1"}
    both = load_settings(path, env=env)
    assert (both.window, both.app_id, both.topic_partitions) == (5_400_000, "from-env", 6)
    assert both.broker_url == "kafka://10.0.0.1:9092"


def test_several_brokers_become_a_bootstrap_list():
    settings = load_settings(None, env={"FUNDFLOW_BROKER_URL": "kafka://h1:9092;h2:9093"})
    assert settings.broker_bootstrap == ["h1:9092", "h2:9093"]


def test_empty_file_means_defaults(tmp_path):
    assert load_settings(write(tmp_path, ""), env={}) == load_settings(None, env={})


def test_unknown_key_in_file_is_named_with_the_known_ones(tmp_path):
    message = error_of(write(tmp_path, "windwo: 2h\n"))
    assert "unknown setting 'windwo'" in message and "window" in message and "settings.yaml" in message


@pytest.mark.parametrize("text,expected", [
    ("window: 3x\n", "window: expected a duration like 90s, 30m, 2h, 1d or 1w, got '3x'"),
    ("topic_partitions: 0\n", "topic_partitions: expected a positive integer, got 0"),
    ("topic_partitions: 2.5\n", "topic_partitions: expected a positive integer, got 2.5"),
    ("topic_partitions: .inf\n", "topic_partitions: expected a positive integer"),
    ("topic_partitions: true\n", "topic_partitions: expected a positive integer, got True"),
    ("web_port: 70000\n", "web_port: expected a TCP port 1-65535"),
    ("window: .nan\n", "window: a duration must be a finite number"),
    ("broker_url: http://h:1\n", "broker_url: expected kafka://HOST:PORT"),
    ("broker_url: kafka://h:99999\n", "broker_url: expected kafka://HOST:PORT"),
    ("clickhouse_url: mysql://h/db\n", "clickhouse_url: expected clickhouse://HOST:PORT/DATABASE or chdb:///PATH"),
    ("webhook_url: ftp://pager\n", "webhook_url: expected an http:// or https:// URL"),
    ("page_min_severity: urgent\n", "page_min_severity: expected one of info, low, medium, high, critical"),
    ("webhook_format: slack\n", "webhook_format: expected one of generic, pagerduty"),
    ("app_id: '  '\n", "app_id: must not be empty"),
    ("window: 1m\n", "allowed_lateness must be shorter than window (got 5m >= 1m)"),
])
def test_bad_file_values_are_one_line_errors(tmp_path, text, expected):
    message = error_of(write(tmp_path, text))
    assert expected in message
    assert message.startswith(str(tmp_path / "settings.yaml"))


def test_bad_environment_value_names_the_variable():
    message = error_of(env={"FUNDFLOW_WEB_PORT": "http"})
    assert message == "environment: FUNDFLOW_WEB_PORT: expected a positive integer, got 'http'"


def test_unreadable_and_malformed_files(tmp_path):
    assert "cannot read settings file" in error_of(tmp_path / "missing.yaml")
    assert "settings.yaml:2: not valid YAML" in error_of(write(tmp_path, "window: 2h\n  app_id: x\n"))
    assert "expected a mapping of setting: value, got list" in error_of(write(tmp_path, "- window\n"))


def test_with_overrides_validates():
    settings = load_settings(None, env={})
    assert settings.with_overrides(broker_url="kafka://x:1").broker_bootstrap == ["x:1"]
    with pytest.raises(SettingsError, match="arguments: broker_url"):
        settings.with_overrides(broker_url="nope://")


def test_describe_settings_covers_every_field_with_its_env_var():
    rows = describe_settings()
    assert [row[0] for row in rows] == [f.name for f in fields(Settings)]
    assert ("window", "FUNDFLOW_WINDOW", "72h", "event-time span of the rolling graph") in rows
    assert all(row[3] for row in rows)


def test_tracer_choices_are_settings_with_checked_values():
    from stream.detection.tracer import TracerOptions
    settings = load_settings(env={"FUNDFLOW_TRACER_POLICY": "proportional", "FUNDFLOW_TRACE_INFLOWS_ABOVE": "5000"})
    options = TracerOptions.from_settings(settings)
    assert (options.policy, options.trace_inflows_above) == ("proportional", 500_000)
    assert TracerOptions.from_settings(load_settings(env={})).trace_inflows_above is None
    for name, value in (("FUNDFLOW_TRACER_POLICY", "random"), ("FUNDFLOW_TRACE_INFLOWS_ABOVE", "-5")):
        with pytest.raises(SettingsError, match=name):
            load_settings(env={name: value})


def test_every_settings_problem_is_reported_at_once_with_a_hint_for_misspelt_keys(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("windw: 2h\nweb_prot: 80\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(path, env={})
    text = str(caught.value)
    assert "unknown setting 'windw' (did you mean 'window'?)" in text
    assert "unknown setting 'web_prot' (did you mean 'web_port'?)" in text
    path.write_text("window: soon\nweb_port: http\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(path, env={"FUNDFLOW_BROKER_URL": "nope://x"})
    text = str(caught.value)
    assert "window: expected a duration" in text and "web_port: expected a positive integer" in text


def test_every_default_already_has_its_field_type_and_loading_nothing_changes_nothing():
    import typing

    hints = typing.get_type_hints(Settings)
    for spec in fields(Settings):
        value = getattr(Settings(), spec.name)
        hint = hints[spec.name]
        origin = typing.get_origin(hint)
        allowed = (origin,) if origin in (tuple, list) else typing.get_args(hint) or (hint,)
        assert isinstance(value, allowed), f"{spec.name} defaults to {value!r}, typed {hints[spec.name]}"
    assert Settings().window == 72 * 3_600_000
    assert Settings() == load_settings(None, env={})
    shown = {row[0]: row[2] for row in describe_settings()}
    assert shown["window"] == "72h" and shown["clickhouse_batch_interval"] == "1s"


def test_shared_defaults_have_one_source():
    from stream.detection.graph import DEFAULT_WINDOW_MS
    from stream.detection.tracer import POLICIES
    from stream.model import defaults
    from stream.model.warning import SEVERITY_RANK
    from stream.settings import SEVERITIES

    assert DEFAULT_WINDOW_MS is defaults.WINDOW_MS and POLICIES is defaults.TRACER_POLICIES
    assert SEVERITIES == tuple(SEVERITY_RANK)


def test_identity_fields_are_a_list_of_field_names_from_the_file_or_the_environment(tmp_path):
    assert load_settings(None, env={}).identity_fields == ()
    assert load_settings(None, env={"FUNDFLOW_IDENTITY_FIELDS": "phone_hash, reg_batch"}).identity_fields == \
        ("phone_hash", "reg_batch")
    path = tmp_path / "s.yaml"
    path.write_text("identity_fields: [phone_hash, phone_hash]\n")
    assert load_settings(path, env={}).identity_fields == ("phone_hash",)
    path.write_text("identity_fields: [\"phone hash\"]\n")
    with pytest.raises(SettingsError, match="identity_fields: expected field names of letters, digits and _"):
        load_settings(path, env={})

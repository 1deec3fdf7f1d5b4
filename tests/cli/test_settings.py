"""payretry policy and config; invalid configuration files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import (
    Invoke,
    assert_error,
    assert_json_error,
    doc,
    jobs,
    ok,
    queue_args,
    queued,
    run,
)

SECRET = "s3cr3t-Pa55"
PG_URL = f"postgresql://payretry:{SECRET}@db.example.com:5432/payments"

# policy


def _rows(invoke: Invoke, env: dict[str, str | None] | None = None) -> dict[str, dict[str, Any]]:
    document = doc(ok(invoke("policy", "--json", env=env)))
    return {row["code"]: row for row in document["rows"]}


def test_policy_json_has_the_strategy_table(invoke: Invoke) -> None:
    document = doc(ok(invoke("policy", "--json")))
    assert document["global_cap"] == 3
    assert document["jitter"] == 0.0
    rows = {row["code"]: row for row in document["rows"]}
    assert rows["card_declined"]["retry"] is False
    assert rows["card_declined"]["max_attempts"] == 0
    assert rows["card_declined"]["delays"] == []
    assert rows["network_error"]["delays"] == ["0s", "1m", "5m"]
    assert rows["processing_error"] == {
        **rows["processing_error"],
        "retry": True,
        "max_attempts": 3,
        "delays": ["1m", "5m", "30m"],
    }
    assert rows["insufficient_funds"]["max_attempts"] == 2
    assert rows["rate_limit_exceeded"]["delays"] == ["30m", "1h", "2h"]
    assert rows["default"]["delays"] == ["5m", "30m"]
    for hard in ("stolen_card", "lost_card", "fraudulent", "do_not_try_again"):
        assert rows[hard]["retry"] is False, hard
    for soft in ("try_again_later", "do_not_honor", "generic_decline"):
        assert rows[soft]["retry"] is True, soft
    assert all(row["source"] for row in rows.values())


def test_policy_human(invoke: Invoke) -> None:
    out = ok(invoke("policy")).stdout
    assert "global cap 3" in out
    card = next(line for line in out.splitlines() if "card_declined" in line)
    assert "never" in card
    assert "1m, 5m, 30m" in out


def test_policy_global_cap_from_env(invoke: Invoke) -> None:
    rows = _rows(invoke, env={"PAYRETRY_MAX_ATTEMPTS": "2"})
    assert rows["processing_error"]["max_attempts"] == 2
    assert rows["network_error"]["max_attempts"] == 2
    job = doc(ok(invoke(*queue_args("t1", "--json"), env={"PAYRETRY_MAX_ATTEMPTS": "2"})))
    assert job["max_attempts"] == 2


def test_policy_global_cap_of_zero_refuses_everything(invoke: Invoke) -> None:
    rows = _rows(invoke, env={"RETRY_MAX_ATTEMPTS": "0"})  # the seed's name still works
    assert rows["processing_error"]["retry"] is False
    assert_error(invoke(*queue_args(), env={"RETRY_MAX_ATTEMPTS": "0"}), 3)
    assert jobs(invoke) == []


def test_policy_row_from_config_file(invoke: Invoke, tmp_path: Path) -> None:
    config = tmp_path / "custom.toml"
    config.write_text(
        '[policy.processing_error]\nmax_attempts = 1\ndelays = ["10s"]\n'
        "[policy.card_declined]\nretry = false\n",
        encoding="utf-8",
    )
    document = doc(ok(invoke("--config", str(config), "policy", "--json")))
    rows = {row["code"]: row for row in document["rows"]}
    assert rows["processing_error"]["max_attempts"] == 1
    assert rows["processing_error"]["delays"] == ["10s"]
    assert "custom.toml" in rows["processing_error"]["source"]
    assert "custom.toml" not in rows["network_error"]["source"]
    job = doc(ok(invoke("--config", str(config), *queue_args("t1", "--json"))))
    assert job["max_attempts"] == 1


# config


def _settings(result: Any) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in doc(ok(result))["settings"]}


def test_config_sources(tmp_path: Path) -> None:
    (tmp_path / "payretry.toml").write_text(
        "[runner]\nbatch_size = 50\n[retry]\njitter = 0.1\n", encoding="utf-8"
    )
    db = f"sqlite:///{tmp_path / 'flag.db'}"
    settings = _settings(run("--db", db, "config", "--json", env={"PAYRETRY_MAX_ATTEMPTS": "5"}))
    assert settings["database.url"]["source"] == "flag"
    assert settings["database.url"]["value"] == db
    assert settings["retry.max_attempts"]["value"] == 5
    assert settings["retry.max_attempts"]["source"].startswith("env")
    assert "PAYRETRY_MAX_ATTEMPTS" in settings["retry.max_attempts"]["source"]
    assert settings["runner.batch_size"]["value"] == 50
    assert settings["runner.batch_size"]["source"].startswith("config")
    assert settings["retry.jitter"]["source"].startswith("config")
    assert settings["log.level"]["source"] == "default"
    assert settings["database.lock_timeout"]["value"] == "5m"
    for row in settings.values():
        assert row["env"].startswith("PAYRETRY_")


def test_config_reports_its_file(tmp_path: Path) -> None:
    assert doc(ok(run("config", "--json")))["config_file"] is None
    (tmp_path / "payretry.toml").write_text("[runner]\nbatch_size = 5\n", encoding="utf-8")
    assert doc(ok(run("config", "--json")))["config_file"] == "payretry.toml"
    other = tmp_path / "other.toml"
    other.write_text("", encoding="utf-8")
    env = {"PAYRETRY_CONFIG": str(other)}
    assert doc(ok(run("config", "--json", env=env)))["config_file"] == str(other)


def test_config_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    (tmp_path / "payretry.toml").write_text(
        '[database]\nurl = "sqlite:///file.db"\n', encoding="utf-8"
    )
    from_file = _settings(run("config", "--json"))["database.url"]
    assert (from_file["value"], from_file["source"]) == (
        "sqlite:///file.db",
        "config payretry.toml",
    )
    env = {"PAYRETRY_DATABASE_URL": "sqlite:///env.db"}
    from_env = _settings(run("config", "--json", env=env))["database.url"]
    assert from_env["value"] == "sqlite:///env.db"
    assert from_env["source"] == "env PAYRETRY_DATABASE_URL"
    from_flag = _settings(run("--db", "sqlite:///flag.db", "config", "--json", env=env))
    assert from_flag["database.url"]["value"] == "sqlite:///flag.db"


def test_config_default_database_lands_in_the_working_directory(tmp_path: Path) -> None:
    url = _settings(run("config", "--json"))["database.url"]
    assert (url["value"], url["source"]) == ("sqlite:///payretry.db", "default")
    ok(run(*queue_args("t1")))
    assert (tmp_path / "payretry.db").is_file()


@pytest.mark.parametrize("how", ["flag", "env", "file"])
def test_config_masks_the_database_password(tmp_path: Path, how: str) -> None:
    args: list[str] = []
    env: dict[str, str | None] = {}
    if how == "flag":
        args = ["--db", PG_URL]
    elif how == "env":
        env = {"PAYRETRY_DATABASE_URL": PG_URL}
    else:
        (tmp_path / "payretry.toml").write_text(f'[database]\nurl = "{PG_URL}"\n', encoding="utf-8")
    as_json = ok(run(*args, "config", "--json", env=env))
    # Wide enough that no table cell folds (a folded secret would slip past the check).
    human = ok(run(*args, "config", env={**env, "COLUMNS": "400"}))
    for result in (as_json, human):
        assert SECRET not in result.stdout + result.stderr
    value = _settings(as_json)["database.url"]["value"]
    assert "db.example.com" in value and "payretry" in value
    assert "db.example.com" in human.stdout


def test_config_human(tmp_path: Path) -> None:
    out = ok(run("config", env={"PAYRETRY_MAX_ATTEMPTS": "4"})).stdout
    line = next(line for line in out.splitlines() if "retry.max_attempts" in line)
    assert "4" in line and "env PAYRETRY_MAX_ATTEMPTS" in line
    assert "PAYRETRY_DATABASE_URL" in out


# invalid configuration


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "payretry.toml").write_text(
        "[retry]\nmax_attempts = 3\njitter = = 0.1\n", encoding="utf-8"
    )
    result = run("config")
    assert_error(result, 2, "payretry.toml", "line 3")
    assert result.stdout == ""
    error = assert_json_error(run("config", "--json"), 2, "config_error")
    assert "payretry.toml" in error["message"] and "line 3" in error["message"]


def test_unknown_setting_names_the_file_and_line(invoke: Invoke, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[retry]\nmax_attempts = 3\n\n[runner]\nbach_size = 5\n", encoding="utf-8")
    assert_error(run("--config", str(config), "config"), 2, "bad.toml", "line 5", "bach_size")
    # Any command refuses to run on a bad config, and writes nothing.
    assert_error(invoke("--config", str(config), *queue_args()), 2, "bad.toml")
    assert jobs(invoke) == []


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("[retry]\nmax_attempts = -1\n", ("line 2", "max_attempts")),
        ('[retry]\nmax_attempts = "three"\n', ("line 2", "max_attempts")),
        ('[log]\nformat = "xml"\n', ("line 2", "format")),
        ('\n[policy.processing_error]\nmax_attempts = 2\ndelays = ["soon"]\n', ("line 4",)),
        ("[policy.network_error]\nretries = 2\n", ("line 2", "retries")),
        ('retry = "x"\n', ("retry",)),
    ],
)
def test_invalid_values_in_the_config_file(tmp_path: Path, text: str, needles: tuple[str]) -> None:
    (tmp_path / "payretry.toml").write_text(text, encoding="utf-8")
    assert_error(run("policy"), 2, "payretry.toml", *needles)


def test_missing_config_file_given_explicitly(tmp_path: Path) -> None:
    assert_error(run("--config", str(tmp_path / "absent.toml"), "config"), 2, "absent.toml")
    assert_error(run("config", env={"PAYRETRY_CONFIG": "gone.toml"}), 2, "gone.toml")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PAYRETRY_MAX_ATTEMPTS", "lots"),
        ("PAYRETRY_RETRY_MAX_ATTEMPTS", "-2"),
        ("PAYRETRY_LOCK_TIMEOUT", "forever"),
        ("RETRY_LOCK_TIMEOUT", "5m"),  # the seed's variable is in milliseconds
        ("PAYRETRY_SIMULATED_SUCCESS_RATE", "2"),
    ],
)
def test_invalid_environment_names_the_variable(variable: str, value: str) -> None:
    assert_error(run("config", env={variable: value}), 2, variable)


def test_legacy_millisecond_variables(invoke: Invoke) -> None:
    env = {"RETRY_LOCK_TIMEOUT": "90000", "RETRY_PROCESSING_INTERVAL": "2000"}
    settings = _settings(run("config", "--json", env=env))
    assert settings["database.lock_timeout"]["value"] == "1m30s"
    assert settings["runner.processing_interval"]["value"] == "2s"


def test_queue_with_a_config_file_in_json_mode(invoke: Invoke, tmp_path: Path) -> None:
    (tmp_path / "payretry.toml").write_text("[nope]\nx = 1\n", encoding="utf-8")
    assert_json_error(invoke(*queue_args("t1", "--json")), 2, "config_error")
    (tmp_path / "payretry.toml").write_text("[retry]\nmax_attempts = 1\n", encoding="utf-8")
    assert queued(invoke, "t1")["max_attempts"] == 1


@pytest.mark.parametrize(("flag", "value"), [("--log-format", "xml"), ("--log-level", "loud")])
def test_invalid_root_flag_names_the_flag(invoke: Invoke, flag: str, value: str) -> None:
    assert_error(invoke(flag, value, "list"), 2, flag, "expected one of")
    assert_json_error(invoke(flag, value, "list", "--json"), 2, "invalid_input", flag)


def test_log_format_json_keeps_stdout_a_json_document(invoke: Invoke) -> None:
    result = ok(invoke("--log-format", "json", "--log-level", "info", *queue_args("t1", "--json")))
    assert doc(result)["transaction_id"] == "t1"
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert any(
        line.get("transaction_id") == "t1" and line.get("error_code") == "processing_error"
        for line in lines
    ), result.stderr

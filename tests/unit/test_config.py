"""Settings: default < config file < environment < flag, every value knowing its source."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from payretry.config import DEFAULT_CONFIG_FILE, KEYS, Key, load_settings, mask
from payretry.domain.policy import DEFAULT_ROW, Outcome
from payretry.errors import ConfigError, InvalidInput
from tests.conftest import NOW
from tests.unit.decisions import first_retry

M = timedelta(minutes=1)
S = timedelta(seconds=1)
CANDIDATES = [
    "7",
    "0.25",
    "42s",
    "json",
    "debug",
    "simulated",
    "5/s",
    "sqlite:///other.db",
    "true",
    "sqs",
    "2d",
    "40d",
]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def sample(key: Key) -> tuple[str, Any]:
    """An environment string that `key` accepts, preferably one giving a non-default value."""
    accepted: list[tuple[str, Any]] = []
    for text in CANDIDATES:
        try:
            accepted.append((text, key.parse(text)))
        except (ValueError, InvalidInput):
            continue
    assert accepted, f"no sample value for {key.dotted}"
    different = [(text, value) for text, value in accepted if value != key.default]
    return (different or accepted)[0]


def config_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env={})
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert str(path) in message
    return message


# --- defaults and precedence ----------------------------------------------------------------


def test_defaults_without_file_or_env() -> None:
    settings = load_settings(env={})
    assert settings.config_file is None
    assert set(settings.sources.values()) == {"default"}
    assert settings["database.url"] == "sqlite:///payretry.db"
    assert settings["database.lock_timeout"] == 5 * M
    assert settings["retry.max_attempts"] == 3
    assert settings["retry.jitter"] == 0.0
    assert settings["retry.window"] is None
    assert settings["runner.processing_interval"] == timedelta(seconds=30)
    assert settings.policy_rows == ()


def test_precedence_default_file_env_flag(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "[retry]\nmax_attempts = 5\njitter = 0.2\nwindow = '2d'\n")
    env = {"PAYRETRY_RETRY_MAX_ATTEMPTS": "6", "PAYRETRY_RETRY_JITTER": "0.3"}

    from_file = load_settings(str(path), env={})
    assert from_file["retry.max_attempts"] == 5
    assert from_file.sources["retry.max_attempts"] == f"config {path}"
    assert from_file.sources["database.url"] == "default"
    assert from_file.config_file == path

    from_env = load_settings(str(path), env=env)
    assert from_env["retry.max_attempts"] == 6
    assert from_env.sources["retry.max_attempts"] == "env PAYRETRY_RETRY_MAX_ATTEMPTS"
    assert from_env["retry.window"] == timedelta(
        days=2
    )  # the file still counts where env is silent
    assert from_env.sources["retry.window"] == f"config {path}"

    from_flag = load_settings(str(path), env=env, flags={"retry.max_attempts": 7})
    assert from_flag["retry.max_attempts"] == 7
    assert from_flag.sources["retry.max_attempts"] == "flag"
    assert from_flag["retry.jitter"] == 0.3
    assert from_flag.sources["retry.jitter"] == "env PAYRETRY_RETRY_JITTER"


def test_flag_set_to_none_does_not_override(tmp_path: Path) -> None:
    settings = load_settings(
        env={"PAYRETRY_DATABASE_URL": "sqlite:///env.db"}, flags={"database.url": None}
    )
    assert settings["database.url"] == "sqlite:///env.db"
    assert settings.sources["database.url"] == "env PAYRETRY_DATABASE_URL"


def test_bad_flag_is_invalid_input_naming_the_option() -> None:
    with pytest.raises(InvalidInput) as caught:
        load_settings(env={}, flags={"retry.max_attempts": "lots"})
    assert caught.value.field == "--max-attempts"


def test_empty_environment_variable_is_ignored() -> None:
    settings = load_settings(env={"PAYRETRY_RETRY_MAX_ATTEMPTS": ""})
    assert settings["retry.max_attempts"] == 3
    assert settings.sources["retry.max_attempts"] == "default"


# --- every key has its variable -------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS, ids=lambda key: key.dotted)
def test_every_key_has_its_payretry_section_key_variable(key: Key) -> None:
    assert key.env == f"PAYRETRY_{key.section}_{key.name}".upper()
    text, value = sample(key)
    settings = load_settings(env={key.env: text})
    assert settings[key.dotted] == value
    assert settings.sources[key.dotted] == f"env {key.env}"
    others = {k.dotted for k in KEYS} - {key.dotted}
    assert all(settings.sources[name] == "default" for name in others)


@pytest.mark.parametrize("key", KEYS, ids=lambda key: key.dotted)
def test_every_key_can_be_set_in_the_file(tmp_path: Path, key: Key) -> None:
    text, value = sample(key)
    path = write(tmp_path / "c.toml", f"[{key.section}]\n{key.name} = {text!r}\n")
    settings = load_settings(str(path), env={})
    assert settings[key.dotted] == value
    assert settings.sources[key.dotted] == f"config {path}"


def test_database_url_variable() -> None:
    settings = load_settings(env={"PAYRETRY_DATABASE_URL": "sqlite:///elsewhere.db"})
    assert settings["database.url"] == "sqlite:///elsewhere.db"


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="PAYRETRY_RETRY_MAX_ATTEMPTS"):
        load_settings(env={"PAYRETRY_RETRY_MAX_ATTEMPTS": "many"})
    with pytest.raises(ConfigError, match="PAYRETRY_RETRY_JITTER"):
        load_settings(env={"PAYRETRY_RETRY_JITTER": "0.9"})  # above the 0.5 limit
    with pytest.raises(ConfigError, match="PAYRETRY_DATABASE_LOCK_TIMEOUT"):
        load_settings(env={"PAYRETRY_DATABASE_LOCK_TIMEOUT": "soon"})


# --- aliases and the seed's names -----------------------------------------------------------


def test_alias_max_attempts() -> None:
    settings = load_settings(env={"PAYRETRY_MAX_ATTEMPTS": "1"})
    assert settings["retry.max_attempts"] == 1
    assert settings.sources["retry.max_attempts"] == "env PAYRETRY_MAX_ATTEMPTS"
    assert settings.policy().cap == 1


def test_alias_lock_timeout() -> None:
    settings = load_settings(env={"PAYRETRY_LOCK_TIMEOUT": "2m"})
    assert settings["database.lock_timeout"] == 2 * M
    assert settings.sources["database.lock_timeout"] == "env PAYRETRY_LOCK_TIMEOUT"


def test_legacy_max_attempts() -> None:
    settings = load_settings(env={"RETRY_MAX_ATTEMPTS": "4"})
    assert settings["retry.max_attempts"] == 4
    assert settings.sources["retry.max_attempts"] == "env RETRY_MAX_ATTEMPTS"


def test_legacy_durations_are_milliseconds() -> None:
    settings = load_settings(
        env={"RETRY_LOCK_TIMEOUT": "90000", "RETRY_PROCESSING_INTERVAL": "1500"}
    )
    assert settings["database.lock_timeout"] == timedelta(seconds=90)
    assert settings.sources["database.lock_timeout"] == "env RETRY_LOCK_TIMEOUT"
    assert settings["runner.processing_interval"] == timedelta(milliseconds=1500)
    assert settings.sources["runner.processing_interval"] == "env RETRY_PROCESSING_INTERVAL"


@pytest.mark.parametrize("variable", ["RETRY_LOCK_TIMEOUT", "RETRY_PROCESSING_INTERVAL"])
def test_legacy_milliseconds_must_be_a_number(variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings(env={variable: "5m"})


def test_canonical_name_beats_alias_beats_legacy() -> None:
    env = {
        "RETRY_LOCK_TIMEOUT": "60000",
        "PAYRETRY_LOCK_TIMEOUT": "2m",
        "PAYRETRY_DATABASE_LOCK_TIMEOUT": "3m",
        "RETRY_MAX_ATTEMPTS": "1",
        "PAYRETRY_MAX_ATTEMPTS": "2",
    }
    settings = load_settings(env=env)
    assert settings["database.lock_timeout"] == 3 * M
    assert settings["retry.max_attempts"] == 2
    assert settings.sources["retry.max_attempts"] == "env PAYRETRY_MAX_ATTEMPTS"
    del env["PAYRETRY_DATABASE_LOCK_TIMEOUT"]
    assert load_settings(env=env)["database.lock_timeout"] == 2 * M


def test_env_beats_file_for_legacy_names(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "[retry]\nmax_attempts = 5\n")
    settings = load_settings(str(path), env={"RETRY_MAX_ATTEMPTS": "2"})
    assert settings["retry.max_attempts"] == 2


# --- finding the file -----------------------------------------------------------------------


def test_config_file_from_payretry_config_variable(tmp_path: Path) -> None:
    path = write(tmp_path / "elsewhere.toml", "[retry]\nmax_attempts = 9\n")
    settings = load_settings(env={"PAYRETRY_CONFIG": str(path)})
    assert settings.config_file == path
    assert settings["retry.max_attempts"] == 9


def test_config_file_in_working_directory() -> None:
    write(Path(DEFAULT_CONFIG_FILE), "[retry]\nmax_attempts = 8\n")  # conftest chdirs to tmp
    settings = load_settings(env={})
    assert settings.config_file == Path(DEFAULT_CONFIG_FILE)
    assert settings["retry.max_attempts"] == 8


def test_explicit_config_beats_variable_and_working_directory(tmp_path: Path) -> None:
    write(Path(DEFAULT_CONFIG_FILE), "[retry]\nmax_attempts = 8\n")
    env_file = write(tmp_path / "env.toml", "[retry]\nmax_attempts = 9\n")
    flag_file = write(tmp_path / "flag.toml", "[retry]\nmax_attempts = 10\n")
    settings = load_settings(str(flag_file), env={"PAYRETRY_CONFIG": str(env_file)})
    assert settings["retry.max_attempts"] == 10
    assert load_settings(env={"PAYRETRY_CONFIG": str(env_file)})["retry.max_attempts"] == 9


def test_missing_config_file_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="cannot read config file") as caught:
        load_settings(str(missing), env={})
    assert str(missing) in str(caught.value)
    with pytest.raises(ConfigError, match="nope.toml"):
        load_settings(env={"PAYRETRY_CONFIG": str(missing)})


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes(b"[database]\nurl = '\xe9'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(str(path), env={})


# --- errors name the file and the line ------------------------------------------------------


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    message = config_error(tmp_path, "[retry]\nmax_attempts = = 3\n")
    assert "not valid TOML" in message
    assert "line 2" in message


def test_unclosed_table_header_names_the_line(tmp_path: Path) -> None:
    message = config_error(tmp_path, "# settings\n\n[retry\nmax_attempts = 3\n")
    assert "line 3" in message


def test_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    message = config_error(tmp_path, "[retry]\njitter = 0.1\nmax_attempt = 3\n")
    assert re.search(r"line 3\b", message)
    assert "unknown setting [retry] max_attempt" in message


def test_unknown_section_names_file_and_line(tmp_path: Path) -> None:
    message = config_error(tmp_path, "[retry]\nmax_attempts = 3\n\n[nope]\nthing = 1\n")
    assert re.search(r"line 5\b", message)
    assert "[nope] thing" in message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[database]\nurl = 'sqlite:///x.db'\n\n[retry]\nmax_attempts = 'many'\n", 5),
        ("[retry]\nmax_attempts = 101\n", 2),
        ("[retry]\nmax_attempts = true\n", 2),
        ("[retry]\njitter = 0.9\n", 2),
        ("[retry]\nwindow = 'a while'\n", 2),
        ("[database]\nlock_timeout = '-5m'\n", 2),
        ("[database]\nurl = 5\n", 2),
        ("[log]\nlevel = 'loud'\n", 2),
    ],
)
def test_bad_value_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    message = config_error(tmp_path, text)
    assert re.search(rf"line {line}\b", message), message


def test_top_level_value_must_be_a_table(tmp_path: Path) -> None:
    message = config_error(tmp_path, "max_attempts = 3\n")
    assert "line 1" in message
    assert "must be a [table]" in message


# --- [policy.<code>] overrides --------------------------------------------------------------


def test_policy_overrides_from_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.toml",
        "[policy.card_declined]\nretry = true\nmax_attempts = 2\ndelays = ['10m', '1h']\n\n"
        "[policy.network_error]\nretry = false\n\n"
        "[policy.default]\nmax_attempts = 1\ndelays = ['15m']\n",
    )
    settings = load_settings(str(path), env={})
    rows = {row.code: row for row in settings.policy_rows}
    assert rows["card_declined"].retry is True
    assert rows["card_declined"].max_attempts == 2
    assert rows["card_declined"].delays == (10 * M, 60 * M)
    assert rows["card_declined"].source == f"config {path}"
    assert rows["network_error"].retry is False
    assert rows["network_error"].max_attempts == 0

    policy = settings.policy()
    first = first_retry(
        policy, job_id="j", error_code="card_declined", decline_code=None, now=NOW, expires_at=None
    )
    assert first.outcome is Outcome.RETRY
    assert first.next_retry_at == NOW + 10 * M
    refused = first_retry(
        policy, job_id="j", error_code="network_error", decline_code=None, now=NOW, expires_at=None
    )
    assert refused.outcome is Outcome.FAILED
    assert policy.default.delays == (15 * M,)
    assert policy.default != DEFAULT_ROW
    # Rows not mentioned keep their defaults.
    assert policy.lookup("processing_error").row.delays == (1 * M, 5 * M, 30 * M)


def test_policy_code_in_the_file_is_normalised(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "[policy.Insufficient_Funds]\nretry = false\n")
    policy = load_settings(str(path), env={}).policy()
    assert policy.lookup("insufficient_funds").row.retry is False


def test_policy_respects_the_global_cap(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.toml", "[policy.network_error]\nmax_attempts = 10\ndelays = ['1m']\n"
    )
    settings = load_settings(
        str(path), env={"PAYRETRY_MAX_ATTEMPTS": "2", "RETRY_MAX_ATTEMPTS": "9"}
    )
    policy = settings.policy()
    assert policy.limit(policy.lookup("network_error").row) == 2


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("[policy.network_error]\nretry = true\nretries = 3\n", 3, "unknown key 'retries'"),
        ("[policy.network_error]\nretry = 'yes'\n", 2, "true or false"),
        ("[policy.network_error]\nmax_attempts = 'x'\ndelays = ['1m']\n", 2, "whole number"),
        ("[policy.network_error]\nmax_attempts = 2\ndelays = '1m'\n", 3, "must be a list"),
        ("[policy.network_error]\nmax_attempts = 2\ndelays = ['soon']\n", 3, "soon"),
        ("[policy.network_error]\nmax_attempts = 2\n", None, "needs delays"),
        ("[retry]\njitter = 0.1\n\n[policy.bad-code]\nretry = false\n", 4, "not an error code"),
        ("[policy.bad-code]\n", 1, "not an error code"),
    ],
)
def test_bad_policy_rows_name_file_and_line(
    tmp_path: Path, text: str, line: int | None, words: str
) -> None:
    message = config_error(tmp_path, text)
    assert words in message
    if line is not None:
        assert re.search(rf"line {line}\b", message), message


def test_policy_must_be_tables(tmp_path: Path) -> None:
    message = config_error(tmp_path, "[policy]\nnetwork_error = 3\n")
    assert "must be a table" in message


# --- secrets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("postgresql://app:s3cret@db.example:5432/pay", "postgresql://app:***@db.example:5432/pay"),
        ("postgresql+psycopg://u:p@h/d", "postgresql+psycopg://u:***@h/d"),
        ("postgresql://app@db.example/pay", "postgresql://app@db.example/pay"),
        ("sqlite:///payretry.db", "sqlite:///payretry.db"),
        ("sk_test_1234567890", "***"),
        (
            "postgresql://u@h/d?password=hunter2&sslmode=require",
            "postgresql://u@h/d?password=***&sslmode=require",
        ),
        (
            "postgresql://u@h/d?SSLPassword=x&application_name=pay",
            "postgresql://u@h/d?SSLPassword=***&application_name=pay",
        ),
        (" sk_live_abc\ndef ", "***"),
        ("short", "***"),
    ],
)
def test_mask(value: str, shown: str) -> None:
    assert mask(value) == shown


def test_describe_masks_the_database_password() -> None:
    settings = load_settings(
        env={"PAYRETRY_DATABASE_URL": "postgresql://app:hunter2@db/pay"},
        flags={"retry.max_attempts": 2},
    )
    rows = {row["key"]: row for row in settings.describe()}
    assert set(rows) == {key.dotted for key in KEYS}
    url = rows["database.url"]
    assert url["value"] == "postgresql://app:***@db/pay"
    assert "hunter2" not in str(settings.describe())
    assert url["source"] == "env PAYRETRY_DATABASE_URL"
    assert url["env"] == "PAYRETRY_DATABASE_URL"
    assert rows["retry.max_attempts"]["source"] == "flag"
    assert rows["database.lock_timeout"]["value"] == "5m"  # durations shown in their short form
    assert all(row["help"] for row in rows.values())


# --- hostile values: bounds, overflow, naming (issue 11) -------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RETRY_PROCESSING_INTERVAL", "99999999999999999999"),  # was an OverflowError
        ("RETRY_LOCK_TIMEOUT", "99999999999999999999"),
        ("RETRY_LOCK_TIMEOUT", "0"),  # a zero lease
        ("RETRY_LOCK_TIMEOUT", "999999999999"),  # 11,574 days
        ("RETRY_LOCK_TIMEOUT", "\u0661\u0662\u0660\u0660\u0660"),  # Arabic-Indic digits
        ("PAYRETRY_LOCK_TIMEOUT", "4s"),
        ("PAYRETRY_DATABASE_LOCK_TIMEOUT", "2d"),
        ("RETRY_PROCESSING_INTERVAL", "0"),
        ("PAYRETRY_RUNNER_PROCESSING_INTERVAL", "0"),
        ("PAYRETRY_RUNNER_PROCESSING_INTERVAL", "500ms"),
        ("PAYRETRY_EVENTS_INTERVAL", "0s"),
        ("PAYRETRY_RUNNER_RATE", "0/s"),
        ("PAYRETRY_RUNNER_RATE", "0"),
        ("PAYRETRY_RUNNER_RATE", "1_000/s"),
        ("PAYRETRY_RUNNER_RATE", "\u0662\u0665/s"),
        ("PAYRETRY_RUNNER_RATE", "1e9/s"),
        ("PAYRETRY_STRIPE_RATE", "0/s"),
        ("PAYRETRY_RUNNER_BATCH_SIZE", "1_000"),
        ("PAYRETRY_RUNNER_BATCH_SIZE", "+5"),
        ("PAYRETRY_RUNNER_BATCH_SIZE", "9" * 5000),
        ("PAYRETRY_RETRY_JITTER", "\u0660.\u0661"),
        ("PAYRETRY_RETRY_WINDOW", "0s"),
        ("PAYRETRY_RUNNER_GRACE_PERIOD", "3650d"),
        ("PAYRETRY_DATABASE_STATEMENT_TIMEOUT", "30d"),  # beyond PostgreSQL's limit
        ("PAYRETRY_STRIPE_READ_TIMEOUT", "0s"),
        ("PAYRETRY_SIMULATED_LATENCY", "\uff15s"),  # fullwidth digit
        ("PAYRETRY_DATABASE_URL", "sqlite:///"),  # an unset $DIR in sqlite:///$DIR/x.db
        ("PAYRETRY_DATABASE_URL", "sqlite://"),
        ("PAYRETRY_DATABASE_URL", "sqlite:///:memory:"),
        ("PAYRETRY_DATABASE_URL", "sqlite:///file:jobs?mode=memory&uri=true"),
        ("PAYRETRY_DATABASE_URL", "postgresql://u:pw@db:abc/pay"),  # was a ValueError
        ("PAYRETRY_DATABASE_URL", "postgresql://u@db:99999/pay"),
        ("PAYRETRY_DATABASE_URL", "mysql://u@db/pay"),
        ("PAYRETRY_DATABASE_URL", "sqlite:///x\x00.db"),
        ("PAYRETRY_EVENTS_FILE", "events\ud800.jsonl"),  # not UTF-8 in the environment
    ],
)
def test_hostile_environment_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={variable: value})
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert f"environment variable {variable}:" in message
    assert "pw" not in message.replace("payretry", "")  # a password is never echoed


@pytest.mark.parametrize(
    ("variable", "value", "dotted", "expected"),
    [
        ("RETRY_LOCK_TIMEOUT", "5000", "database.lock_timeout", timedelta(seconds=5)),
        ("RETRY_LOCK_TIMEOUT", "86400000", "database.lock_timeout", timedelta(days=1)),
        ("PAYRETRY_RUNNER_PROCESSING_INTERVAL", "1s", "runner.processing_interval", 1 * S),
        ("PAYRETRY_RUNNER_RATE", "90/h", "runner.rate", 90 / 3600),
        ("PAYRETRY_RUNNER_RATE", "", "runner.rate", None),
        ("PAYRETRY_DATABASE_STATEMENT_TIMEOUT", "0s", "database.statement_timeout", 0 * S),
    ],
)
def test_values_at_the_bounds_are_accepted(
    variable: str, value: str, dotted: str, expected: object
) -> None:
    assert load_settings(env={variable: value})[dotted] == expected


def test_the_test_overrides_allow_short_leases_and_intervals_only() -> None:
    env = {
        "PAYRETRY_LOCK_TIMEOUT": "1s",
        "PAYRETRY_RUNNER_PROCESSING_INTERVAL": "200ms",
        "PAYRETRY_EVENTS_INTERVAL": "200ms",
    }
    with pytest.raises(ConfigError, match="PAYRETRY_LOCK_TIMEOUT: expected 5s to 1d"):
        load_settings(env=env)
    env["PAYRETRY_DATABASE_ALLOW_SHORT_LEASE"] = "true"
    with pytest.raises(ConfigError, match="PROCESSING_INTERVAL: expected 1s to 1d"):
        load_settings(env=env)
    env["PAYRETRY_RUNNER_ALLOW_SHORT_INTERVAL"] = "true"
    settings = load_settings(env=env)
    assert settings["database.lock_timeout"] == S
    assert settings["runner.processing_interval"] == 200 * timedelta(milliseconds=1)
    for variable in ("PAYRETRY_LOCK_TIMEOUT", "PAYRETRY_RUNNER_PROCESSING_INTERVAL"):
        for still_refused in ("0s", "50ms", "2d"):
            with pytest.raises(ConfigError, match=f"{variable}: expected 100ms to 1d"):
                load_settings(env={**env, variable: still_refused})


def test_an_in_memory_database_only_when_asked_for() -> None:
    env = {"PAYRETRY_DATABASE_URL": "sqlite:///:memory:", "PAYRETRY_DATABASE_ALLOW_MEMORY": "1"}
    assert load_settings(env=env)["database.url"] == "sqlite:///:memory:"
    with pytest.raises(ConfigError, match="no file path"):
        load_settings(env={**env, "PAYRETRY_DATABASE_URL": "sqlite:///"})  # never


def test_a_bound_set_in_the_file_names_the_file_and_line(tmp_path: Path) -> None:
    message = config_error(tmp_path, "[runner]\nbatch_size = 10\nprocessing_interval = '0s'\n")
    assert re.search(r"line 3\b", message) and "processing_interval" in message
    message = config_error(tmp_path, "[database]\nurl = 'sqlite:///'\n")
    assert re.search(r"line 2\b", message) and "[database] url" in message


@pytest.mark.parametrize(
    ("dotted", "value", "flag"),
    [
        ("retention.period", "-1d", "--older-than"),  # purge --older-than
        ("runner.processing_interval", "abc", "--interval"),  # serve --interval
        ("runner.processing_interval", "0", "--interval"),
        ("runner.rate", "0/s", "--rate"),
        ("metrics.port", "http", "--metrics-port"),
        ("health.max_due_age", "0s", "--max-due-age"),
        ("database.url", "sqlite:///", "--db"),
        ("database.url", "", "--db"),
    ],
)
def test_errors_name_the_flag_as_typed(dotted: str, value: str, flag: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_settings(env={}, flags={dotted: value})
    assert caught.value.field == flag
    assert not isinstance(caught.value, ConfigError)


def test_a_config_file_that_never_ends_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "big.toml", "# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_settings(str(path), env={})


def test_a_config_file_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b"[retry]\nmax_attempts = 3\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"line 3: not UTF-8"):
        load_settings(str(path), env={})


def test_config_shows_no_secret_anywhere() -> None:
    settings = load_settings(
        env={
            "PAYRETRY_DATABASE_URL": "postgresql://app:hunter2@db/pay?sslpassword=k3y&password=pw9",
            "PAYRETRY_SQS_ENDPOINT_URL": "http://user:s3cr3t@127.0.0.1:5000",
            "STRIPE_API_KEY": "sk_live_abcdefghijklmnop",
            "PAYRETRY_WEBHOOK_URL": "https://hooks.example/T0/B0/capabilityXYZ",
            "PAYRETRY_WEBHOOK_SECRET": "whsec_longsecretvalue",
            "PAYRETRY_SEGMENT_WRITE_KEY": "segkey123456789",
        }
    )
    rows = {row["key"]: row["value"] for row in settings.describe()}
    text = str(rows)
    for secret in ("hunter2", "k3y", "pw9", "s3cr3t", "abcdefgh", "capabilityXYZ", "longsecret"):
        assert secret not in text
    assert "seg" not in str(rows["segment.write_key"])
    assert rows["database.url"] == "postgresql://app:***@db/pay?sslpassword=***&password=***"
    assert rows["stripe.api_key"] == "***"
    assert rows["webhook.url"] == "https://hooks.example/***"


def test_every_section_has_a_typed_view_with_exactly_its_keys() -> None:
    from dataclasses import fields

    from payretry.config import KEYS, VIEWS

    sections: dict[str, set[str]] = {}
    for key in KEYS:
        sections.setdefault(key.section, set()).add(key.name)
    assert set(VIEWS) == set(sections)
    for section, names in sections.items():
        assert {f.name for f in fields(VIEWS[section])} == names, section
    settings = load_settings(env={})
    for section, view in VIEWS.items():  # each view reads back exactly the resolved values
        built: object = settings.view(section, view)
        for f in fields(view):
            assert getattr(built, f.name) == settings[f"{section}.{f.name}"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PAYRETRY_PAGES_SESSION_TTL", "1m"),  # below its 5-minute floor
        ("PAYRETRY_PAGES_SESSION_TTL", "8d"),  # above its 7-day limit
        ("PAYRETRY_PAGES_SESSION_TTL", "soon"),
        ("PAYRETRY_PAGES_SECURE_COOKIES", "maybe"),
        ("PAYRETRY_STRIPE_AUTO_QUEUE", "maybe"),
        ("PAYRETRY_QUEUE_MAX_ACTIVE", "0"),
    ],
)
def test_bad_value_of_a_new_setting_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(env={name: value})

"""Plain SQLite URLs are read without SQLAlchemy (payretry/store/urls.py) exactly as
SQLAlchemy's own parser reads them; every other URL still goes through that parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from payretry.store.urls import check_database_url, memory_database, plain_sqlite_database

PATHS = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(path=PATHS, prefix=st.sampled_from(["", "/", "//", "./", "~/", "file:", ":memory:"]))
def test_a_plain_sqlite_url_is_read_as_sqlalchemy_reads_it(prefix: str, path: str) -> None:
    url = f"sqlite:///{prefix}{path}"
    database = plain_sqlite_database(url)
    if database is None:  # left to SQLAlchemy: only a query string or a %-escape
        assert "?" in url or "%" in url
        return
    parsed = make_url(url)
    assert parsed.get_backend_name() == "sqlite" and parsed.port is None
    assert database == parsed.database


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "SQLITE:///a.db",
        "sqlite+pysqlite:///a.db",
        "sqlite:///a%20b.db",
        "sqlite:///a.db?timeout=5",
        "postgresql://u@h:5432/db",
        "sqlite:////tmp/x.db",
    ],
)
def test_only_the_plain_form_skips_the_parser(url: str) -> None:
    plain = url.startswith("sqlite:///") and "?" not in url and "%" not in url
    assert (plain_sqlite_database(url) is not None) is plain


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("sqlite:///", "has no file path (an unset variable in sqlite:///$DIR/x.db?)"),
        ("sqlite://", "has no file path (an unset variable in sqlite:///$DIR/x.db?)"),
        ("sqlite:///:memory:", "is an in-memory database"),
        ("sqlite:///file:x?mode=memory&uri=true", "is an in-memory database"),
        ("sqlite:///x.db", None),
        ("postgresql://u@h/db", None),
    ],
)
def test_memory_databases_are_named_on_both_paths(url: str, why: str | None) -> None:
    assert memory_database(url) == why


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("mysql://u@h/db", "payretry stores on SQLite"),
        ("postgresql://u@h:99999/db", "has a port outside 1 to 65535"),
        ("postgresql://u@h:port/db", "is not a database URL"),
    ],
)
def test_other_urls_are_still_checked_by_the_parser(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        check_database_url(url)
    assert check_database_url("sqlite:///ok.db") == "sqlite:///ok.db"

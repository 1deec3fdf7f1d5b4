"""Secrets masked wherever they can appear: URL userinfo, credential query parameters,
credential pairs in free text, Stripe keys; a mask shows no character of the secret."""

from __future__ import annotations

import time

import pytest

from payretry.masking import mask_secrets, mask_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/pay", "postgresql://app:***@db:5432/pay"),
        ("postgresql://app:p@ss w/rd@db/pay", "postgresql://app:***@ss w/rd@db/pay"),
        ("postgresql://app@db/pay?password=hunter2", "postgresql://app@db/pay?password=***"),
        ("postgresql://app@db/pay?PASSWORD=hunter2", "postgresql://app@db/pay?PASSWORD=***"),
        (
            "postgresql://a@db/p?sslmode=require&sslpassword=k3y&application_name=pay",
            "postgresql://a@db/p?sslmode=require&sslpassword=***&application_name=pay",
        ),
        (
            "https://h.example/x?access_token=t0k&api_key=k&sig=s&pwd=p&secret=x&page=2",
            "https://h.example/x?access_token=***&api_key=***&sig=***&pwd=***&secret=***&page=2",
        ),
        ("sqlite:///payretry.db", "sqlite:///payretry.db"),
        ("postgresql://app@db/pay", "postgresql://app@db/pay"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_a_url_without_a_password_but_with_an_at_in_its_password_is_masked_to_the_first_at() -> (
    None
):
    # SQLAlchemy reads the password up to the first @; so does the mask.
    assert "hunter" not in mask_url("postgresql://u:hunter@2@db/pay")


def test_a_capability_url_shows_only_its_host() -> None:
    url = "https://hooks.example/services/T000/B000/XXXXSECRET?x=1"
    assert mask_url(url, path=False) == "https://hooks.example/***"
    assert mask_url("https://tok3n@hooks.example/a", path=False) == "https://***@hooks.example/***"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("cannot open postgresql://u@h:5432/d?password=hunter2: refused", "hunter2"),
        ("cannot open postgresql://u:hunter2@h:5432/d: refused", "hunter2"),
        ("dsn: host=h user=u password=hunter2 dbname=d", "hunter2"),
        ("dsn: host=h password='hunter 2' dbname=d", "hunter 2"),
        ('{"password": "hunter2", "user": "u"}', "hunter2"),
        ("db_password: hunter2", "hunter2"),
        ("client_secret=hunter2&x=1", "hunter2"),
        ("Authorization: Bearer eyJhbGciOi.J9xyz-abc=", "eyJhbGciOi"),
        ("key sk_live_51Habcdefghij0123 was refused", "51Habcdefghij"),
        ("whsec_abcdef123456 is the secret", "abcdef123456"),
        ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI"),
    ],
)
def test_mask_secrets_in_free_text(text: str, secret: str) -> None:
    masked = mask_secrets(text)
    assert secret not in masked
    assert "***" in masked or "[redacted-key]" in masked


@pytest.mark.parametrize(
    "text",
    [
        'password authentication failed for user "payretry"',
        "Key (transaction_id)=(txn_1) already exists.",
        "cannot reach http://localhost:8080/v1: refused; contact ops@example.com",
        "idempotency_key=payretry:abc:1",
    ],
)
def test_mask_secrets_leaves_ordinary_text_alone(text: str) -> None:
    assert mask_secrets(text) == text


def test_masking_a_megabyte_is_linear() -> None:
    for text in ("://a:" * 200_000, "password=" * 110_000, "?token=" * 140_000, "a@" * 500_000):
        started = time.perf_counter()
        mask_secrets(text)
        mask_url(text)
        assert time.perf_counter() - started < 3.0

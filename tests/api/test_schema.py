"""schemathesis against /openapi.json, every route but the endless event stream, with an admin
token: no 500, and every response matches its documented status, content type and schema.
Bounded: a fixed number of examples per operation, a fixed seed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import MakeApi

pytestmark = pytest.mark.slow


def test_the_schema_holds_for_generated_requests(make_api: MakeApi, tmp_path: Path) -> None:
    # Stripe webhooks on, so generated deliveries reach the signature check (400); off, the
    # route answers a deliberate 503, which the no-server-error check would count.
    api = make_api(PAYRETRY_STRIPE_WEBHOOK_SECRET="whsec_schema_0123456789")
    api.queue("txn_1")
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{api.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {api.tokens['admin']}",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance",
        "--exclude-path",
        "/api/events",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "15",
        "--seed",
        "1",
        "--request-timeout",
        "10",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
    ]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]

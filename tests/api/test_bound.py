"""The bounded queue over HTTP (a real uvicorn): a full queue evicts for a bigger payment (201),
refuses a smaller one (409 queue_full, nothing stored), and the eviction shows in the job's
status and story, the stats, the dashboard's counts and the Prometheus metrics."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import SEED_BODY, MakeApi
from tests.pages.conftest import admin_client


def _body(amount: float) -> dict[str, Any]:
    return {**SEED_BODY, "metadata": {**SEED_BODY["metadata"], "amount": amount}}


def test_a_full_queue_over_http(make_api: MakeApi) -> None:
    api = make_api(PAYRETRY_QUEUE_MAX_ACTIVE="2")
    operator = api.client("operator")
    for txn, amount in (("txn_small", 10.0), ("txn_mid", 50.0)):
        assert operator.post(f"/api/payments/retry/{txn}", json=_body(amount)).status_code == 201

    refused = operator.post("/api/payments/retry/txn_tiny", json=_body(5.0))
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["kind"] == "queue_full" and "max_active" in error["message"]
    assert operator.get("/api/payments/retry/txn_tiny").status_code == 404  # nothing stored

    big = operator.post("/api/payments/retry/txn_big", json=_body(500.0))
    assert big.status_code == 201, big.text
    evicted = operator.get("/api/payments/retry/txn_small", params={"explain": "true"}).json()
    assert evicted["state"] == "evicted"
    assert big.json()["job_id"] in evicted["reason"]
    steps = [s for s in evicted["story"] if s["kind"] == "evicted"]
    assert len(steps) == 1 and steps[0]["evicted_by_transaction"] == "txn_big"
    assert "retry_evicted" in [e["type"] for e in evicted["events"]]

    stats = operator.get("/api/payments/retry/stats").json()
    assert stats["by_state"] == {"evicted": 1, "scheduled": 2}
    overview = admin_client(api).get("/admin")
    assert '<a href="/admin/jobs?state=evicted">evicted</a></td><td>1</td>' in overview.text
    metrics = api.client(None).get("/metrics").text
    assert "payments_retry_evicted 1.0" in metrics
    assert 'payretry_jobs{state="evicted"} 1.0' in metrics

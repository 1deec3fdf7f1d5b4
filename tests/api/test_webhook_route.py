"""The webhook route on the API alone: off without a secret (503, saying how to turn it on),
no bearer token asked, a bad signature refused before anything is read."""

from __future__ import annotations

from tests.api.conftest import MakeApi


def test_the_route_is_off_without_a_secret(make_api: MakeApi) -> None:
    api = make_api()
    answer = api.client(None).post("/webhooks/stripe", content=b"{}")
    assert answer.status_code == 503
    assert "PAYRETRY_STRIPE_WEBHOOK_SECRET" in answer.json()["error"]["message"]


def test_a_bad_signature_is_400_with_no_token_needed(make_api: MakeApi) -> None:
    api = make_api(PAYRETRY_STRIPE_WEBHOOK_SECRET="whsec_route_0123456789")
    client = api.client(None)
    for headers in ({}, {"Stripe-Signature": "t=1,v1=abc"}):
        answer = client.post("/webhooks/stripe", content=b'{"id": "evt_1"}', headers=headers)
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["kind"] == "bad_signature" and error["field"] == "Stripe-Signature"

#!/usr/bin/env bash
# The main job on the embedded default: SQLite file + simulated processor.
# Creates .venv if missing, installs payretry, queues a realistic mix of failed payments and
# runs the retry loop through simulated time. Idempotent: each run starts a fresh demo database.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.payretry-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[api]'
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH" NO_COLOR=1 COLUMNS="${COLUMNS:-110}"
mkdir -p demo
rm -f demo/payretry.db demo/payretry.db-wal demo/payretry.db-shm
DB="sqlite:///$PWD/demo/payretry.db"
cat > demo/failed-payments.jsonl <<'JSONL'
{"transaction_id": "txn_1001", "user_id": "usr_a1", "amount": "1299.00", "currency": "USD", "error_code": "network_error", "error_message": "connection reset by peer"}
{"transaction_id": "txn_1002", "user_id": "usr_b2", "amount": "49.99", "currency": "USD", "error_code": "processing_error", "metadata": {"simulate": "processing_error,processing_error,succeeded"}}
{"transaction_id": "txn_1003", "user_id": "usr_c3", "amount": "250.00", "currency": "EUR", "error_code": "card_declined", "decline_code": "insufficient_funds", "metadata": {"simulate": "card_declined:insufficient_funds,succeeded"}}
{"transaction_id": "txn_1004", "user_id": "usr_d4", "amount": "15000", "currency": "JPY", "error_code": "rate_limit_exceeded", "error_message": "429 from processor"}
{"transaction_id": "txn_1005", "user_id": "usr_e5", "amount": "12.500", "currency": "BHD", "error_code": "service_unavailable", "metadata": {"simulate": "service_unavailable,service_unavailable,service_unavailable"}}
{"transaction_id": "txn_1006", "user_id": "usr_f6", "amount": "89.00", "currency": "GBP", "error_code": "processing_error", "window": "30m", "metadata": {"simulate": "processing_error,processing_error,succeeded"}}
{"transaction_id": "txn_1007", "user_id": "usr_g7", "amount": "5.00", "currency": "USD", "error_code": "network_error", "metadata": {"simulate": "card_declined:stolen_card"}}
{"transaction_id": "txn_1008", "user_id": "usr_h8", "amount": "75.25", "currency": "CAD", "error_code": "card_declined", "decline_code": "generic_decline"}
{"transaction_id": "txn_1009", "user_id": "usr_i9", "amount": "310.00", "currency": "USD", "error_code": "authentication_failed"}
{"transaction_id": "txn_1010", "user_id": "usr_j10", "amount": "999.99", "currency": "USD", "error_code": "issuer_timeout", "error_message": "card 4242 4242 4242 4242 timed out for jane@example.com"}
JSONL

say() { printf '\n$ %s\n' "$*"; }
say payretry queue --from-file demo/failed-payments.jsonl
payretry --db "$DB" queue --from-file demo/failed-payments.jsonl
say payretry queue txn_1011 --error-code card_declined --decline-code stolen_card ...
payretry --db "$DB" queue txn_1011 --error-code card_declined --decline-code stolen_card \
  --user-id usr_k11 --amount 20 --currency USD || echo "(exit $?: refused by policy, nothing stored)"
say payretry list --due
payretry --db "$DB" list --due
say "run-due, again and again, through simulated time (the simulated processor; seed 7)"
.venv/bin/python scripts/demo.py "$DB"
say payretry stats
payretry --db "$DB" stats
say payretry status txn_1006
payretry --db "$DB" status txn_1006
say payretry status txn_1010 --json "(the card number and e-mail in the message were redacted)"
payretry --db "$DB" status txn_1010 --json | grep -E '"(error_message|state|reason)"'

# The HTTP API: `payretry api` on a free port in the background, one request, then stopped.
say "payretry api --http-port 0 (in the background), then curl one route"
export PAYRETRY_HTTP_TOKEN_SECRET="demo-secret-$$"
if .venv/bin/python -c "import fastapi, uvicorn" 2>/dev/null; then
  TOKEN="$(payretry --db "$DB" token create --role viewer --name demo 2>/dev/null)"
  payretry --db "$DB" api --http-port 0 2> demo/api.log &
  API_PID=$!
  for _ in $(seq 100); do
    URL="$(grep -o 'http://[0-9.:]*' demo/api.log | head -1 || true)"
    [ -n "$URL" ] && break
    sleep 0.1
  done
  echo "\$ curl -H 'Authorization: Bearer prt_...' $URL/api/payments/retry/txn_1006"
  curl -sS -H "Authorization: Bearer $TOKEN" "$URL/api/payments/retry/txn_1006" | head -c 400; echo
  kill -TERM "$API_PID"; wait "$API_PID" || true
else
  echo "(the HTTP API needs the api extra: .venv/bin/pip install -e '.[api]')"
fi

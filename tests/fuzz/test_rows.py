"""Properties of the intake: any row (any JSON value in any field) gives a clean NewJob or
InvalidInput naming a field; any file gives rows or InvalidInput; never anything else."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from payretry.domain.validation import looks_like_card, looks_like_email
from payretry.errors import InvalidInput
from payretry.service.intake import FIELDS, new_job, read_rows
from tests.conftest import NOW
from tests.fuzz.conftest import FUZZ
from tests.fuzz.strategies import cards, hostile_text

BASE = {
    "transaction_id": "t1",
    "user_id": "u1",
    "amount": "10.00",
    "currency": "USD",
    "error_code": "processing_error",
}
_SCALARS = st.one_of(
    hostile_text(40),
    cards(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(),
    st.booleans(),
    st.none(),
)
_VALUES = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=3),
    st.dictionaries(st.one_of(hostile_text(12), cards()), _SCALARS, max_size=4),
)
_CHANGES = st.dictionaries(
    st.one_of(st.sampled_from([*FIELDS, "amount_minor"]), hostile_text(10)), _VALUES, max_size=5
)


def _texts(job: Any) -> list[str]:
    texts = [job.transaction_id, job.user_id, job.error_code, job.decline_code or ""]
    texts += [job.error_message or "", *job.refs.as_dict().values()]
    texts += [*job.metadata.keys(), *job.metadata.values()]
    return [t for t in texts if t]


@FUZZ
@given(changes=_CHANGES)
def test_a_row_gives_a_clean_job_or_invalid_input(changes: dict[str, Any]) -> None:
    try:
        job = new_job({**BASE, **changes}, now=NOW)
    except InvalidInput as exc:
        assert exc.exit_code == 2
        assert not looks_like_card(str(exc)) and not looks_like_email(str(exc))
        if exc.field is not None:
            assert not looks_like_card(exc.field)
        return
    for text in _texts(job):
        assert not looks_like_card(text) and not looks_like_email(text), text
    assert job.priority is None or not looks_like_card(str(abs(job.priority)))


def _read(content: bytes, suffix: str) -> list[tuple[int, dict[str, Any]]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"rows{suffix}"
        path.write_bytes(content)
        return list(read_rows(path))


_LINES = st.one_of(
    st.binary(max_size=80),
    hostile_text(60).map(lambda t: t.encode("utf-8", "surrogatepass")),
    _CHANGES.map(
        lambda c: json.dumps({**BASE, **c}, ensure_ascii=False).encode("utf-8", "surrogatepass")
    ),
    st.sampled_from([b"\xef\xbb\xbf", b"[" * 3000, b'{"a": 1, "a": 2}', b"NaN", b'"x"', b"\r"]),
)


@FUZZ
@given(lines=st.lists(_LINES, max_size=6), suffix=st.sampled_from([".jsonl", ".csv"]))
def test_any_file_gives_rows_or_invalid_input(lines: list[bytes], suffix: str) -> None:
    content = b"\n".join(lines)
    if suffix == ".csv" and lines:
        content = b"transaction_id,user_id,amount,currency,error_code,metadata\n" + content
    try:
        rows = _read(content, suffix)
    except InvalidInput as exc:
        assert exc.field == "--from-file"
        return
    numbers = [number for number, _ in rows]
    assert numbers == sorted(numbers)
    for number, fields in rows:
        assert isinstance(number, int) and isinstance(fields, dict)
        if "__error__" in fields:
            assert not looks_like_card(fields["__error__"])
            continue
        try:
            new_job(fields, now=NOW)
        except InvalidInput:
            pass

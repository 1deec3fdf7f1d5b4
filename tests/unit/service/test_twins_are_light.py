"""payretry.testing ships in the package for users' tests: importing it must not pull in the
database, cloud or processor libraries (the import-linter contract says so for the code; this
says so for what a fresh interpreter actually loads)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sqlalchemy", "sqlmodel", "alembic", "psycopg", "boto3", "botocore", "stripe")


def test_importing_the_twins_loads_no_heavy_library() -> None:
    code = (
        "import sys, payretry.testing\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout

"""Start localstripe on a loopback port with its state file where the tests say.

localstripe takes only `--port` and `--from-scratch`, binds every interface, and keeps its state
in /tmp/localstripe.pickle; the tests want a free loopback port and a state file of their own,
so this launcher points its store's two file methods at a path in the test's temporary folder
and serves its application on 127.0.0.1. Usage: python -m tests.stripe.run_localstripe PORT FILE
"""

from __future__ import annotations

import pickle
import sys
from typing import Any


def main() -> None:
    port, state_file = int(sys.argv[1]), sys.argv[2]
    from aiohttp import web
    from localstripe import resources
    from localstripe.server import app

    def dump(store: Any) -> None:
        with open(state_file, "wb") as out:
            pickle.dump(dict(store), out, protocol=pickle.HIGHEST_PROTOCOL)

    resources.Store.dump_to_disk = dump
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()

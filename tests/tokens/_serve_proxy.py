"""Run the team service in proxy mode in its own process, for the tests.

``python tests/tokens/_serve_proxy.py '<json create_app kwargs + "port">'``; the key comes
from the environment (MATHPIX_APP_KEY / MATHPIX_APP_ID), as in production, so it never
appears on a command line. Used where a test needs what the CLI does not expose
(``region_urls`` to point "eu" at a LocalServer).
"""

from __future__ import annotations

import json
import logging
import sys

from mathpix_nb._serving import serve_forever
from mathpix_nb.tokens import create_app
from mathpix_nb.tokens._store import Quotas


def main() -> None:
    config = json.loads(sys.argv[1])
    port = config.pop("port")
    if "quotas" in config:
        config["quotas"] = Quotas(**config["quotas"])
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    serve_forever(
        create_app(**config), host="127.0.0.1", port=port, log_level="info", access_log=False
    )


if __name__ == "__main__":
    main()

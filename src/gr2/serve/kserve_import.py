"""KServe, imported without letting it read our command line.

`kserve.model_server` parses sys.argv with its own parser when it is first imported; `gr2 serve --config F`
would be taken for its `--configure_logging F` (argparse accepts prefixes) and fail. Everything in
gr2.serve imports KServe from here."""

from __future__ import annotations

import sys

_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    import kserve
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.errors import InvalidInput
    from kserve.model_server import app
    from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse
    from kserve.protocol.rest.server import RESTServer
finally:
    sys.argv = _argv

__all__ = [
    "FASTAPI_APP_IMPORT_STRING",
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "InvalidInput",
    "RESTServer",
    "app",
    "kserve",
]

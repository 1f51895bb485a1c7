"""Logging: one JSON object per line by default (what log pipelines ingest), text for humans."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import time

# User and item ids are personal data in the AWS model: log lines show them only as short hashes
# unless payload logging is switched on for debugging (observability.log_payloads).
_log_payloads = False
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")


def hash_id(value: str) -> str:
    """A short stable stand-in for an id: the same id always gives the same hash, so log lines can
    still be correlated without revealing it."""
    return "#" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:12]


def redact(message: str) -> str:
    """`message` with every quoted value replaced by its hash (our messages and the service's quote
    the values they mention); unchanged when payload logging is on."""
    if _log_payloads:
        return message
    return _QUOTED.sub(lambda m: hash_id(m.group(1) if m.group(1) is not None else m.group(2)), message)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(fmt: str = "json", level: str = "INFO", log_payloads: bool = False) -> None:
    global _log_payloads
    _log_payloads = log_payloads
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # botocore logs every retry at DEBUG and credentials lookups at INFO; keep them quiet.
    for noisy in ("botocore", "boto3", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

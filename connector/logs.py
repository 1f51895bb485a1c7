"""Logging: one JSON object per line by default (what log pipelines ingest), text for humans.

Protections that apply to every line, whoever wrote it (our modules, librdkafka, kafka-python):
user and item ids are hashed where our messages and the service's quote them (`redact`), the
userinfo of any URL and the configured secret values are masked (`scrub`), and a line repeated in a
flood is shown a few times and then counted ("… and N more like this in the last 10 s",
`RepeatCoalescer`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# User and item ids are personal data in the AWS model: log lines show them only as short hashes
# unless payload logging is switched on for debugging (observability.log_payloads).
_log_payloads = False

# Which quoted values are ids. Hashing every quoted word made schema errors unreadable (a
# fastavro resolution error quotes every field and type name), so only a quoted value that an id
# word introduces is hashed:
#   - a word or dotted path ending in a camelCase or snake_case id: userId, itemId, sessionId,
#     eventList.3.itemId, user_id, recommendationIds (also quoted, as a JSON / dict key);
#   - the words id / ids / value / values / user / users / item / items (the AWS validation format
#     is "Value 'x' at 'eventList.1.member.itemId' failed to satisfy constraint");
# optionally followed by ':' or '=' or the word 'is' / 'of'. Everything else quoted stays readable.
_ID_WORD = r"(?:[A-Za-z0-9_.\-]*(?:Id|ID|_id|Ids|IDs|_ids)|[Ii][Dd]s?|[Vv]alues?|[Uu]sers?|[Ii]tems?)"
_QUOTED_ID = re.compile(
    r"(?P<lead>(?<![A-Za-z0-9_])" + _ID_WORD + r"['\"]?\s*(?:[:=]\s*|\s+(?:is\s+|of\s+)?))"
    r"(?:'(?P<single>[^']*)'|\"(?P<double>[^\"]*)\")"
)
# scheme://user:password@host -> scheme://***@host, anywhere in a line (registry URLs, endpoints).
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://)[^\s/@'\"<>]+@")


def hash_id(value: str) -> str:
    """A short stable stand-in for an id: the same id always gives the same hash, so log lines can
    still be correlated without revealing it."""
    return "#" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:12]


def _hash_quoted_id(match: re.Match[str]) -> str:
    value = match.group("single") if match.group("single") is not None else match.group("double")
    return match.group("lead") + hash_id(value)


def redact(message: str) -> str:
    """`message` with every quoted user/item/session id replaced by its hash (see _QUOTED_ID for the
    rule); unchanged when payload logging is on."""
    if _log_payloads:
        return message
    return _QUOTED_ID.sub(_hash_quoted_id, message)


def mask_url_credentials(text: str) -> str:
    """Every `scheme://user:secret@` in `text` as `scheme://***@` (always, whatever log_payloads says)."""
    return _URL_USERINFO.sub(r"\1***@", text)


# The configured secret values themselves (register_secrets): a library may print one in a form no
# pattern foresees, e.g. kafka-python's DEBUG dump of the SASL PLAIN request bytes.
_secrets: re.Pattern[str] | None = None
MIN_SECRET_LENGTH = 6  # shorter values ("true", "1000") would mask ordinary words


def register_secrets(values: Iterable[str]) -> None:
    """Mask these exact values (and their repr-escaped forms) in every log line from now on."""
    global _secrets
    forms = {form for v in values if len(v) >= MIN_SECRET_LENGTH and not v.isdigit()
             for form in (v, repr(v)[1:-1])}
    # Longest first, so a secret that contains another is masked whole.
    _secrets = re.compile("|".join(map(re.escape, sorted(forms, key=len, reverse=True)))) if forms else None


def scrub(text: str) -> str:
    """`text` with URL credentials and the registered secret values masked."""
    text = mask_url_credentials(text)
    return _secrets.sub("**********", text) if _secrets is not None else text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


# ---- coalescing repeated lines ---------------------------------------------------------------------

_DIGITS = re.compile(r"\d+")


def repeat_key(record: logging.LogRecord) -> tuple[str, int, str]:
    """What makes two records "the same line": logger, level and message template. A record logged
    with arguments is keyed by its template ("dead-lettering %s ..."); a preformatted one
    (librdkafka's lines) by its text with every number replaced, so "after 0ms" and "after 2ms", or
    two ports of one broker, count as one."""
    template = str(record.msg) if record.args else _DIGITS.sub("#", record.getMessage())
    return record.name, record.levelno, template


def _always_shown(record: logging.LogRecord) -> bool:
    # Our own INFO/DEBUG lines are lifecycle events (assignments, revokes, skipped offsets, the
    # summary), few by construction, which operators and tests read one by one.
    return record.levelno < logging.WARNING and (record.name == "connector" or record.name.startswith("connector."))


@dataclass
class _Window:
    start: float
    shown: int = 0
    suppressed: int = 0
    last: logging.LogRecord | None = None


class RepeatCoalescer(logging.Handler):
    """Passes records to `target`, at most `burst` of the same `repeat_key` per `window_s`; the
    rest are counted, and when the window ends one line says how many were left out and shows
    the last of them: "… and 1326 more like this in the last 10 s: <message>".

    Windows end when the next record arrives, on flush/close (logging.shutdown at exit), and, when
    `background` is on, from a daemon thread once a second so a flood that stops is still summed up
    promptly. Tests drive it with an injected clock and `background=False`.
    """

    def __init__(
        self,
        target: logging.Handler,
        window_s: float = 10.0,
        burst: int = 5,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ) -> None:
        super().__init__(target.level)
        self.target = target
        self.window_s = window_s
        self.burst = burst
        self._clock = clock
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self._background = background
        self._sweeper: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.window_s <= 0 or _always_shown(record):
            self.target.handle(record)
            return
        now = self._clock()
        self._close_windows(now)
        key = repeat_key(record)
        window = self._windows.setdefault(key, _Window(start=now))
        if window.shown < self.burst:
            window.shown += 1
            self.target.handle(record)
            return
        window.suppressed += 1
        window.last = record
        self._start_sweeper()

    def sweep(self) -> None:
        """End the windows that are over (what the background thread does every second)."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self._close_windows(self._clock())

    def _close_windows(self, now: float, everything: bool = False) -> None:
        for key, window in list(self._windows.items()):
            if everything or now - window.start >= self.window_s:
                del self._windows[key]
                if window.suppressed and window.last is not None:
                    self.target.handle(self._summary(window))

    def _summary(self, window: _Window) -> logging.LogRecord:
        last = window.last
        assert last is not None
        summary = logging.LogRecord(
            last.name, last.levelno, last.pathname, last.lineno,
            "… and %d more like this in the last %g s: %s", (window.suppressed, self.window_s, last.getMessage()),
            None,
        )
        return summary

    def _start_sweeper(self) -> None:
        if not self._background or self._sweeper is not None:
            return

        def sweep_forever() -> None:
            while True:
                time.sleep(1.0)
                self.sweep()

        self._sweeper = threading.Thread(target=sweep_forever, name="log-coalescer", daemon=True)
        self._sweeper.start()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._close_windows(self._clock(), everything=True)
        self.target.flush()

    def close(self) -> None:
        self.flush()
        self.target.close()
        super().close()


def configure_logging(
    fmt: str = "json", level: str = "INFO", log_payloads: bool = False, coalesce_window_s: float = 10.0
) -> None:
    global _log_payloads
    _log_payloads = log_payloads
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [RepeatCoalescer(stream, window_s=coalesce_window_s)]
    root.setLevel(level.upper())
    # botocore logs every retry at DEBUG and credentials lookups at INFO; keep them quiet.
    for noisy in ("botocore", "boto3", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

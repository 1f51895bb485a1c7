"""Log hygiene: which quoted values are hashed, URL credentials masked, floods coalesced."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from connector import logs
from connector.logs import RepeatCoalescer, hash_id, mask_url_credentials, redact


@pytest.mark.parametrize(("message", "hidden"), [
    # the emulator's reject_item_ids fault and our own entity messages
    ("eventList.4.itemId: 'item-x-4' is rejected by the emulator's reject_item_ids fault", "item-x-4"),
    ("itemId 'sku-991' is marked deleted; PutItems cannot delete", "sku-991"),
    # the AWS validation-exception format
    ("1 validation error detected: Value 'u-77' at 'eventList.1.member.userId' failed to satisfy constraint",
     "u-77"),
    # ids as keys of a JSON object or a Python dict in a message
    ('properties: {"userId": "alice", "score": 1}', "alice"),
    ("{'sessionId': 'sess-1', 'x': 2}", "sess-1"),
    ("user_id='bob' unknown", "bob"),
    ('tracking id "tr-1" is unknown', "tr-1"),
    ("user 'carol' has no profile", "carol"),
    ("items of 'dave'", "dave"),
])
def test_ids_introduced_by_an_id_word_are_hashed(message: str, hidden: str) -> None:
    out = redact(message)
    assert hidden not in out
    assert hash_id(hidden) in out


def test_ordinary_quoted_words_stay_readable() -> None:
    # fastavro's schema resolution errors quote every name and type; hashing them all made a
    # 7,157-character line of hashes.
    schema = {"type": "record", "name": "InteractionEvent", "fields": [
        {"name": f"field{i}", "type": ["null", "string"], "default": None} for i in range(60)]}
    message = f"writer schema cannot be read as the reader schema: Schema mismatch: {schema!r} is not {schema!r}"
    assert redact(message) == message
    for text in ("must not contain the reserved key 'userId'", "topic 'orders' does not exist",
                 "does not match the pattern '^[a-z]+$'", "expected 'valid' JSON", "got \"paid\" status"):
        assert redact(text) == text, text


def test_the_path_after_a_value_is_kept_only_the_value_is_hashed() -> None:
    out = redact("Value 'u-77' at 'eventList.1.member.userId' failed")
    assert out == f"Value {hash_id('u-77')} at 'eventList.1.member.userId' failed"


def test_payload_logging_shows_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_log_payloads", True)
    assert redact("itemId 'x1'") == "itemId 'x1'"


@pytest.mark.parametrize("text", [
    "GET http://reader:s3cret@127.0.0.1:8081/apis/ccompat/v7/subjects failed",
    "url=https://key:se%40cret@registry.example.com and more",
    "see 'http://a:s3cret@h/x'",
])
def test_url_credentials_are_masked_anywhere(text: str) -> None:
    out = mask_url_credentials(text)
    assert "s3cret" not in out and "se%40cret" not in out and "://***@" in out


def test_urls_without_credentials_are_unchanged() -> None:
    text = "http://127.0.0.1:8081/x and mailto-like user@example.com"
    assert mask_url_credentials(text) == text


def test_formatters_mask_url_credentials_in_messages_and_tracebacks() -> None:
    try:
        raise RuntimeError("cannot GET http://u:topsecret@h/")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, "f", 1, "failed %s", ("http://u:topsecret@h/",), None)
        import sys

        record.exc_info = sys.exc_info()
    for formatter in (logs.JsonFormatter(), logs.TextFormatter()):
        assert "topsecret" not in formatter.format(record)


# ---- the coalescer ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")


def _record(msg: str, *args: object, name: str = "librdkafka", level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, "f", 1, msg, args or None, None)


def _coalescer(burst: int = 2) -> tuple[RepeatCoalescer, Collect, Clock]:
    out, clock = Collect(), Clock()
    return RepeatCoalescer(out, window_s=10, burst=burst, clock=clock, background=False), out, clock


def test_a_flood_shows_a_burst_then_one_summary_per_window() -> None:
    handler, out, clock = _coalescer(burst=2)
    for i in range(1327):  # librdkafka's lines while a broker is down for 60 s
        clock.now = 1000 + i * 60 / 1327
        handler.handle(_record(f"FAIL|rdkafka#consumer-1| 127.0.0.1:{9092}/1: Connect failed (after {i}ms)"))
    handler.flush()
    summaries = [line for line in out.lines if "more like this in the last 10 s" in line]
    assert len(summaries) == 6  # one per 10 s window
    assert len(out.lines) == 6 * 2 + 6
    shown = sum(1 for line in out.lines if "more like this" not in line)
    counted = sum(int(line.split("… and ")[1].split()[0]) for line in summaries)
    assert shown + counted == 1327  # nothing disappears without being counted
    assert summaries[0].startswith("librdkafka WARNING … and ") and "Connect failed (after" in summaries[0]


def test_records_logged_with_arguments_are_keyed_by_their_template() -> None:
    handler, out, _ = _coalescer(burst=1)
    for offset in range(1000):  # a registry 404 run: one warning per record
        handler.handle(_record("dead-lettering %s: %s", f"t[0]@{offset}", "unknown schema id 7",
                               name="connector.worker"))
    handler.flush()
    assert out.lines == ["connector.worker WARNING dead-lettering t[0]@0: unknown schema id 7",
                         "connector.worker WARNING … and 999 more like this in the last 10 s: "
                         "dead-lettering t[0]@999: unknown schema id 7"]


def test_different_lines_loggers_and_levels_are_not_merged() -> None:
    handler, out, _ = _coalescer(burst=1)
    handler.handle(_record("broker down"))
    handler.handle(_record("broker down", level=logging.ERROR))
    handler.handle(_record("broker down", name="kafka.conn"))
    handler.handle(_record("registry down"))
    assert len(out.lines) == 4


def test_our_own_info_lines_are_never_coalesced() -> None:
    handler, out, _ = _coalescer(burst=1)
    for i in range(20):
        handler.handle(_record("assigned %s", f"t[{i}]", name="connector.worker", level=logging.INFO))
    assert len(out.lines) == 20


def test_a_new_window_starts_after_the_last_one_ended() -> None:
    handler, out, clock = _coalescer(burst=1)
    handler.handle(_record("x"))
    handler.handle(_record("x"))
    clock.now += 10
    handler.sweep()  # the background thread's job
    assert out.lines[-1].endswith("… and 1 more like this in the last 10 s: x")
    handler.handle(_record("x"))
    assert out.lines[-1] == "librdkafka WARNING x"
    handler.flush()
    assert len(out.lines) == 3  # nothing was suppressed in the second window: no summary


def test_a_zero_window_disables_coalescing() -> None:
    out = Collect()
    handler = RepeatCoalescer(out, window_s=0, background=False)
    for _ in range(50):
        handler.handle(_record("x"))
    assert len(out.lines) == 50


def test_json_lines_stay_valid_with_a_summary() -> None:
    import io

    stream = io.StringIO()
    target = logging.StreamHandler(stream)
    target.setFormatter(logs.JsonFormatter())
    handler = RepeatCoalescer(target, window_s=10, burst=1, clock=Clock(), background=False)
    for _ in range(3):
        handler.handle(_record('say "hi"'))
    handler.close()
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["message"] for e in entries] == ['say "hi"', '… and 2 more like this in the last 10 s: say "hi"']


def test_registered_secret_values_are_masked_in_any_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_secrets", None)
    logs.register_secrets(["connector-secret", 'p"w\\{1}x', "true", "123456789"])
    record = logging.LogRecord("kafka.protocol.parser", logging.DEBUG, "f", 1,
                               "Send: %r and %s", (b"user\x00user\x00connector-secret", 'p"w\\{1}x'), None)
    line = logs.TextFormatter().format(record)
    assert "connector-secret" not in line and 'p"w' not in line and line.count("**********") == 2
    # Short and numeric values are not scrubbed: they would mask ordinary words and counts.
    assert logs.scrub("true 123456789") == "true 123456789"


def test_secret_values_of_the_settings(tmp_path: Any) -> None:
    from connector.config import load_settings

    path = tmp_path / "c.yaml"
    path.write_text("kafka: {bootstrap_servers: b, topics: [t], config: {sasl.password: pw-123456, "
                    "sasl.username: alice-the-user, sasl.pasword: typo-secret, session.timeout.ms: 10000}}\n"
                    "personalize: {tracking_id: t}\n"
                    "schema_registry: {url: 'http://r', basic_auth_user: u, basic_auth_password: reg-secret}\n")
    values = load_settings(path, {}).secret_values()
    assert sorted(values) == ["pw-123456", "reg-secret", "typo-secret"]

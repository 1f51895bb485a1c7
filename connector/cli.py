"""Command-line entry point: `personalize-connector <command>`.

Each subcommand imports its module lazily so `--help` and the emulator start fast and do not
pull in the Kafka clients.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from contextlib import suppress


def _run(args: argparse.Namespace) -> int:
    from connector.app import run_from_cli

    return run_from_cli(args)


def _emulator(args: argparse.Namespace) -> int:
    from connector.emulator.server import run_from_cli

    return run_from_cli(args)


def _produce(args: argparse.Namespace) -> int:
    from connector.tools.produce import run_from_cli

    return run_from_cli(args)


def _check(args: argparse.Namespace) -> int:
    from connector.tools.check import run_from_cli

    return run_from_cli(args)


def _dlq_replay(args: argparse.Namespace) -> int:
    from connector.tools.replay import replay_from_cli

    return replay_from_cli(args)


def _dlq_inspect(args: argparse.Namespace) -> int:
    from connector.tools.replay import inspect_from_cli

    return inspect_from_cli(args)


def build_parser() -> argparse.ArgumentParser:
    # Pure Python (no Kafka client, no Avro library at import): --help stays fast.
    from connector.tools.samples import KINDS as SAMPLE_KINDS

    parser = argparse.ArgumentParser(
        prog="personalize-connector",
        description="Stream Avro interaction events from Kafka into Amazon Personalize PutEvents.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the worker until SIGTERM/SIGINT (or until idle)")
    run.add_argument("--config", required=True, metavar="FILE", help="YAML configuration file")
    run.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="SECONDS",
        help="stop once nothing arrived for this long, everything is delivered and committed, and every "
        "assigned partition is read to its end (idle counts only once the group gave this worker its assignment)",
    )
    run.add_argument("--log-format", choices=("json", "text"), help="default: observability.log_format")
    run.add_argument("--log-level", default="INFO")
    run.set_defaults(handler=_run)

    emu = sub.add_parser("emulator", help="serve a local Amazon Personalize Events API (no AWS needed)")
    emu.add_argument("--port", type=int, default=8750)
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--db", metavar="FILE", help="persist accepted events in this SQLite file")
    emu.add_argument(
        "--tracking-id",
        action="append",
        default=[],
        metavar="ID",
        help="known tracking ids (repeatable); other ids get ResourceNotFoundException. Default: any",
    )
    emu.add_argument(
        "--max-requests-per-second",
        type=float,
        default=1000.0,
        help="request-rate quota per tracking id / dataset before ThrottlingException (default 1000)",
    )
    emu.set_defaults(handler=_emulator)

    produce = sub.add_parser("produce", help="produce realistic sample interaction events (or items, users ...)")
    produce.add_argument("--config", required=True, metavar="FILE")
    produce.add_argument("--events", type=int, required=True, metavar="N", help="how many records")
    produce.add_argument(
        "--kind", choices=SAMPLE_KINDS, default="interactions",
        help="what to produce, with its packaged schema (default interactions)",
    )
    produce.add_argument("--sessions", type=int, metavar="S")
    produce.add_argument("--bad-ratio", type=float, default=0.0, metavar="R")
    produce.add_argument("--seed", type=int, default=7)
    produce.add_argument("--topic", help="default: the first topic routed to the kind's destination")
    produce.add_argument("--format", choices=("avro", "json", "json_schema", "protobuf"), default="avro",
                         help="value format: Confluent Avro (default), plain JSON, Confluent JSON Schema, or "
                              "Confluent Protobuf, each with the kind's packaged schema")
    produce.set_defaults(handler=_produce)

    check = sub.add_parser(
        "check",
        help="probe the config, Kafka, the schema registry, the DLQ topic and Personalize; exit 1 on a failure",
    )
    check.add_argument("--config", required=True, metavar="FILE")
    check.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per probe (default 10)")
    check.set_defaults(handler=_check)

    dlq = sub.add_parser("dlq", help="inspect or replay the dead-letter topic")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    replay = dlq_sub.add_parser(
        "replay",
        help="run dead letters through the pipeline again (own group <group_id>.dlq-replay, commits progress)",
    )
    replay.add_argument("--config", required=True, metavar="FILE")
    replay.add_argument("--from-topic", metavar="TOPIC", help="default: dlq.topic of the config")
    replay.add_argument("--limit", type=int, metavar="N", help="replay at most N records (partitions in order)")
    replay.add_argument(
        "--dry-run", action="store_true", help="decode and map only: say per record whether it would succeed now"
    )
    replay.add_argument(
        "--route", metavar="NAME",
        help="replay through this route of `routes` (default: the interactions route of kafka.topics); "
             "the DLQ defaults to its dlq_topic",
    )
    replay.add_argument("--log-level", default="WARNING")
    replay.set_defaults(handler=_dlq_replay)
    inspect = dlq_sub.add_parser("inspect", help="summarise dead letters by stage and error class (no commits)")
    inspect.add_argument("--config", required=True, metavar="FILE")
    inspect.add_argument("--from-topic", metavar="TOPIC", help="default: dlq.topic of the config")
    inspect.add_argument("--limit", type=int, metavar="N", help="read at most N records (partitions in order)")
    inspect.set_defaults(handler=_dlq_inspect)
    return parser


def silence_third_party_deprecations() -> None:
    """Keep other packages' deprecation notices off the CLI's stderr (authlib warns about httpx on
    every import of the registry client): an operator cannot act on them. Our own still show."""
    with suppress(ImportError):
        # authlib installs an "always" filter for its warning class when imported; import it first
        # so the filters below, inserted in front, take precedence.
        import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
        warnings.filterwarnings("default", category=category, module=r"connector(\.|$)")


def _librdkafka_refusal(exc: BaseException) -> str | None:
    """librdkafka's words when `exc` is its refusal of a configuration property, else None."""
    if type(exc).__name__ != "KafkaException" or not exc.args:
        return None  # not imported here: --help and the emulator must not load librdkafka
    error = exc.args[0]
    code, name = getattr(error, "code", None), getattr(error, "name", None)
    if not callable(code) or not callable(name) or name() != "_INVALID_ARG":
        return None
    return str(error.str())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    silence_third_party_deprecations()
    try:
        return handler(args)
    except Exception as exc:
        # Every command builds librdkafka clients from kafka.config (produce, dlq inspect/replay,
        # check); one refused at creation is a configuration error naming the property.
        refused = _librdkafka_refusal(exc)
        if refused is None:
            raise
        command = " ".join(filter(None, (args.command, getattr(args, "dlq_command", None))))
        print(f"personalize-connector {command}: invalid configuration: kafka.config: librdkafka refuses it: "
              f"{refused}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C before the worker installed its own handler (during imports, the broker preflight):
        # nothing was consumed or committed yet, so stop without a traceback, with the shell's code.
        print("personalize-connector: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

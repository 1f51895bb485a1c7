"""The worker's tuning, read by the pipeline's owners (built from `Settings` in `connector.app`)."""

from __future__ import annotations

from dataclasses import dataclass

from connector.records import TopicPartition


@dataclass(slots=True)
class WorkerSettings:
    topics: list[str]
    poll_batch_size: int = 250
    poll_timeout_s: float = 0.1
    commit_interval_s: float = 1.0
    max_buffered_records: int = 100_000
    max_buffered_bytes: int = 64 * 1024 * 1024
    grace_period_s: float = 30.0
    revoke_timeout_s: float = 10.0
    # Exceptions from the decoder that mean "try again later" rather than "bad record".
    retryable_decode_errors: tuple[type[BaseException], ...] = ()
    decode_retry_backoff_s: float = 5.0
    # Read each listed partition only below this offset, then stop (dead-letter replay, batch jobs).
    stop_at: dict[TopicPartition, int] | None = None
    # Offsets delivered above the watermark go into the commit metadata; a new owner skips them.
    commit_metadata: bool = True
    # Dead letters in a row on one partition before it stalls instead (0: never).
    max_consecutive_failures: int = 1000
    stall_retry_s: float = 60.0
    # More than this share of dead letters among a partition's last `failure_ratio_window`
    # records stalls it too (0: never).
    max_failure_ratio: float = 0.9
    failure_ratio_window: int = 1000
    # How often the subscribed topics (names, not patterns) are checked for existence.
    topic_check_interval_s: float = 5.0

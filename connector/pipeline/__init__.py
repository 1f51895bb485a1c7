"""The worker's owners, one job each, in the order a record meets them.

    partitions   per-partition state: created on assignment, dropped in one place (the epoch outlives it)
    intake       record -> entry for the batcher, or a record error for the dead-letter policy
    dispatch     batches -> calls on the pool, one call per key at a time; outcomes back, epoch-checked
    dead_letters the dead-letter policy: write the letter, or stall the partition, or stop (no DLQ)
    committer    the watermark per partition and its metadata -> Kafka, on an interval and on revoke
    flow         what must not be read now: backpressure, held partitions, failing routes -> pause/resume
    progress     when a bounded run is done (idle and caught up, stop offsets) and missing topics

`connector.worker` composes them into the loop. They share only the small values of
`connector.records` and the `Partitions` owner.
"""

"""The operator's commands besides `run`, thin and on the worker's own building blocks.

    check     is everything the worker needs there (Kafka, registry, Personalize), before it starts?
    replay    `dlq inspect` and `dlq replay`: look at dead letters, send them again after a fix
    produce   sample interaction traffic (from `workload`) for demos, tests and benchmarks
    workload  the seeded generator of that traffic
"""

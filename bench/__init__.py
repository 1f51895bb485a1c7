"""Benchmarks of the connector: `make bench` (python -m bench.run) regenerates docs/benchmarks.md.

Modules, in the order the runner uses them:

- `settings`  the parameters (BENCH_* environment variables) and the machine facts on the page;
- `procs`     the local stack, emulator processes and pinned subprocesses sampled from /proc;
- `workload`  the reproducible workloads, the paced live replay and the offline ideal call counts;
- `baseline`  what the common tools do (one PutEvents call and one sync commit per event; with
              `--senders N`, N such senders in parallel, like Kafka Connect's tasks);
- `ceiling`   consume + decode + map with no sink: the machine's limit for the non-sink part;
- `cpu_profile` cProfile of an in-process worker run, aggregated by stage;
- `stages`    each measurement (`parallel_baseline`, `group_quota`, `decode_cost`: a stage each,
              in its own module); `ratios` the paired-ratio arithmetic and verdicts;
              `report` the page and its charts; `run` the whole thing.
"""

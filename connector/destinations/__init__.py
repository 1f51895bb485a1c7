"""Destinations: one module per Personalize write operation, each owning what it knows.

A destination owns its mapper (decoded record -> entry body), its batching key (which entries may
share a call, and in what order), its tombstone and delete policy, and the call its key forms
from a batch (operation name and parameters). The pipeline sees only `base.Destination`; the sink
sends `batch.key.request(bodies)` and names no destination.

- `events`: PutEvents, batched by session (`SessionKey`: trackingId, sessionId, userId).
- `items`, `users`: PutItems / PutUsers, batched by dataset and source partition; they share
  `entities` (an `EntityKind` names the operation, the id field and the entries' parameter).
- `actions`: PutActions, an `entities` kind like items and users.
- `action_interactions`: PutActionInteractions, batched by tracker and session
  (`TrackerSessionKey`), with event ids derived like the events destination's.
- `fields`: field paths and value conversions every mapper shares.
- `registry`: `destination:` names of the configuration -> how to build each destination.

Adding a destination (as `actions` and `action_interactions` were added):
1. A configuration model in connector/config/models.py: a route model with its `destination:`
   Literal added to the `AnyRoute` union (or, for another dataset of the `datasetArn` + list
   shape, the value added to `EntityRoute.destination`), and its mapping model.
2. A module here: its mapper implementing `base.Destination` (`counts_events`, `skips_deletes`,
   `tombstone`, `to_event`), its key with `route` and `request(entries) -> Request`, and
   `build(route_config)`. A dataset-shaped operation needs only an `EntityKind` and
   `entities.build` (see `actions`); one with its own grouping needs its own key (see
   `action_interactions`). An operation the lean client does not list yet goes into its
   `_OPERATIONS`, proved equal to botocore's request in tests/unit/test_lean_client.py.
3. A registry entry: `"actions": Registration(actions.build, actions.READER_SCHEMA)` (the packaged
   reader schema, if the destination has one in avro_schemas).
Nothing in the worker, the pipeline, the batcher or the sink changes; the registry's unit test
fails until every `destination:` value the configuration accepts is registered.
"""

"""A local Amazon Personalize Events API (PutEvents, PutItems, PutUsers) for tests and benchmarks.

It speaks the wire protocol botocore and the AWS CLI use (rest-json over HTTP/1.1, SigV4-shaped
`Authorization` header), rejects what the real service rejects (validation comes from
`connector.personalize.api_model`, i.e. from botocore's service model), and adds `/_emulator/...` endpoints to
inspect accepted records and inject faults. Entry point: `personalize-connector emulator`.
"""

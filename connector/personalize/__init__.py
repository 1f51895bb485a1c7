"""Everything about talking to Amazon Personalize's events API.

    api_model     shapes and limits from botocore's service model (shared with the emulator)
    sink          one call with its retries: failure classes, backoff, bisection, systemic failures
    ratelimit     the request quota as an adaptive token bucket
    api_response  what a successful answer is (a 2xx that is not the API's is retried)
    lean_client   the default client: sends what botocore sends, cheaper per call
    http_pool     the lean client's keep-alive HTTP/1.1 connections (one request, one answer)
"""

"""Schemathesis hooks for scripts/schemathesis.sh: the binary media types Flow Trail takes
(OTLP protobuf on /v1/traces, debugging bundles on /api/v1/admin/import) are sent as the raw
bytes schemathesis generates, so those operations are fuzzed too (with bytes that are not a
valid message or bundle: the server must answer them with a documented 4xx)."""

import schemathesis

schemathesis.serializer.alias(
    ["application/x-protobuf", "application/vnd.flowtrail.bundle"], "application/octet-stream"
)

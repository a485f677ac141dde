"""A competitor-selection pipeline traced the way a user would trace it: the official
OpenTelemetry Python SDK, OpenInference's semantic conventions and Flow Trail's own
attributes and events, exported to a Flow Trail server with an unmodified OTLP exporter.

    pipeline.py http|json|grpc [--url URL] [--grpc ADDR] [--key KEY]

`http` is OTLP/HTTP protobuf to `<url>/v1/traces`, `json` is OTLP/JSON to the same path (the
SDK has no OTLP/JSON exporter, so a small one is below), `grpc` is OTLP/gRPC to `ADDR`
(`host:port`). `--url`, `--grpc` and `--key` default to `FLOWTRAIL_URL`, `FLOWTRAIL_GRPC` and
`FLOWTRAIL_API_KEY`. The batch processor exports at most two spans per request, and the first
request is sent twice, as an exporter that retries after a lost answer would.

Prints the trace id (32 lowercase hex characters) on stdout and nothing else; exits non-zero
if any export failed. Used by server/tests/otel_python.rs.
"""

import argparse
import base64
import json
import os
import sys
import threading
import urllib.error
import urllib.request

from google.protobuf.json_format import MessageToDict
from openinference.semconv.trace import (
    DocumentAttributes,
    OpenInferenceMimeTypeValues,
    OpenInferenceSpanKindValues,
    RerankerAttributes,
    SpanAttributes,
)
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND
RETRIEVED = [("B0STAND42", 0.91), ("B0CASE01", 0.40), ("B0DESK07", 0.77)]
RERANKED = [("B0STAND42", 0.95), ("B0DESK07", 0.62)]


def document(prefix, index, attribute):
    """`<prefix>.<index>.document.<attribute>`, OpenInference's flattened document list."""
    return f"{prefix}.{index}.{attribute}"


class OtlpJsonSpanExporter(SpanExporter):
    """OTLP/JSON over HTTP: the protobuf request in the proto3 JSON mapping, with the
    trace and span ids as lowercase hex and enums as integers, as the OTLP spec requires."""

    def __init__(self, endpoint, headers, timeout=10.0):
        self._endpoint = endpoint
        self._headers = {**headers, "Content-Type": "application/json"}
        self._timeout = timeout

    def export(self, spans):
        body = MessageToDict(
            encode_spans(spans),
            preserving_proto_field_name=False,
            use_integers_for_enums=True,
        )
        for resource_spans in body.get("resourceSpans", []):
            for scope_spans in resource_spans.get("scopeSpans", []):
                for span in scope_spans.get("spans", []):
                    hex_ids(span)
                    for link in span.get("links", []):
                        hex_ids(link)
        request = urllib.request.Request(
            self._endpoint,
            data=json.dumps(body).encode(),
            headers=self._headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            print(f"OTLP/JSON export: HTTP {error.code}: {error.read()!r}", file=sys.stderr)
            return SpanExportResult.FAILURE
        except (OSError, ValueError) as error:
            print(f"OTLP/JSON export: {error}", file=sys.stderr)
            return SpanExportResult.FAILURE
        partial = answer.get("partialSuccess") or {}
        if int(partial.get("rejectedSpans", 0)):
            print(f"OTLP/JSON export: partial success: {partial}", file=sys.stderr)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30000):
        return True


def hex_ids(message):
    """Rewrites the proto3 JSON mapping's base64 ids to OTLP/JSON's hex."""
    for field in ("traceId", "spanId", "parentSpanId"):
        if message.get(field):
            message[field] = base64.b64decode(message[field]).hex()


class FirstBatchTwice(SpanExporter):
    """Sends the first batch twice and remembers whether any export failed."""

    def __init__(self, exporter):
        self._exporter = exporter
        self._lock = threading.Lock()
        self._exports = 0
        self.failures = 0

    def export(self, spans):
        with self._lock:
            self._exports += 1
            times = 2 if self._exports == 1 else 1
            names = ", ".join(span.name for span in spans)
            print(f"export {self._exports}: {names}" + (" (sent twice)" if times == 2 else ""),
                  file=sys.stderr)
        result = SpanExportResult.SUCCESS
        for _ in range(times):
            try:
                outcome = self._exporter.export(spans)
            except Exception as error:  # an exporter that raises has failed too
                print(f"export raised: {error!r}", file=sys.stderr)
                outcome = SpanExportResult.FAILURE
            if outcome != SpanExportResult.SUCCESS:
                with self._lock:
                    self.failures += 1
                result = SpanExportResult.FAILURE
        return result

    def shutdown(self):
        self._exporter.shutdown()

    def force_flush(self, timeout_millis=30000):
        return self._exporter.force_flush(timeout_millis)


def exporter_for(transport, url, grpc, key):
    authorization = f"Bearer {key}"
    if transport == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(
            endpoint=f"{url}/v1/traces", headers={"authorization": authorization}
        )
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(
            endpoint=grpc, insecure=True, headers=(("authorization", authorization),)
        )
    return OtlpJsonSpanExporter(f"{url}/v1/traces", {"Authorization": authorization})


def run_pipeline(tracer):
    """The traced pipeline; returns the trace id."""
    query = {"title": "Adjustable laptop stand"}
    with tracer.start_as_current_span("competitor_selection") as root:
        root.set_attribute(KIND, OpenInferenceSpanKindValues.CHAIN.value)
        root.set_attribute(SpanAttributes.INPUT_VALUE, json.dumps(query))
        root.set_attribute(
            SpanAttributes.INPUT_MIME_TYPE, OpenInferenceMimeTypeValues.JSON.value
        )
        root.set_attribute("flowtrail.tag.seller", "S1")

        with tracer.start_as_current_span("retrieve") as span:
            span.set_attribute(KIND, OpenInferenceSpanKindValues.RETRIEVER.value)
            span.set_attribute(SpanAttributes.INPUT_VALUE, "laptop stand")
            documents = SpanAttributes.RETRIEVAL_DOCUMENTS
            for i, (doc_id, score) in enumerate(RETRIEVED):
                span.set_attribute(document(documents, i, DocumentAttributes.DOCUMENT_ID), doc_id)
                span.set_attribute(
                    document(documents, i, DocumentAttributes.DOCUMENT_SCORE), score
                )
                span.set_attribute(
                    document(documents, i, DocumentAttributes.DOCUMENT_CONTENT), f"{doc_id} text"
                )

        with tracer.start_as_current_span("rerank") as span:
            span.set_attribute(KIND, OpenInferenceSpanKindValues.RERANKER.value)
            span.set_attribute(RerankerAttributes.RERANKER_QUERY, "laptop stand")
            span.set_attribute(RerankerAttributes.RERANKER_TOP_K, 2)
            for i, (doc_id, _) in enumerate(RETRIEVED):
                span.set_attribute(
                    document(
                        RerankerAttributes.RERANKER_INPUT_DOCUMENTS,
                        i,
                        DocumentAttributes.DOCUMENT_ID,
                    ),
                    doc_id,
                )
            for i, (doc_id, score) in enumerate(RERANKED):
                outputs = RerankerAttributes.RERANKER_OUTPUT_DOCUMENTS
                span.set_attribute(document(outputs, i, DocumentAttributes.DOCUMENT_ID), doc_id)
                span.set_attribute(
                    document(outputs, i, DocumentAttributes.DOCUMENT_SCORE), score
                )

        with tracer.start_as_current_span("llm_judge") as span:
            span.set_attribute(KIND, OpenInferenceSpanKindValues.EVALUATOR.value)
            span.set_attribute(SpanAttributes.LLM_MODEL_NAME, "judge-1")
            span.set_attribute("flowtrail.reasoning", "a desk is not a laptop stand")
            span.add_event(
                "flowtrail.candidate",
                {"candidate_id": "B0STAND42", "verdict": "kept", "score": 0.9},
            )
            span.add_event(
                "flowtrail.candidate",
                {
                    "candidate_id": "B0DESK07",
                    "verdict": "rejected",
                    "score": 0.2,
                    "reason.code": "wrong_category",
                    "reason.text": "a desk, not a stand",
                    "attr.category": "Desks",
                },
            )

        with tracer.start_as_current_span("select") as span:
            span.set_attribute("flowtrail.step.kind", "select")
            span.set_attribute("flowtrail.candidates_in", 1)
            span.set_attribute("flowtrail.candidates_out", 1)
            span.set_attribute(SpanAttributes.OUTPUT_VALUE, "B0STAND42")

        root.set_attribute(SpanAttributes.OUTPUT_VALUE, "B0STAND42")
        return root.get_span_context().trace_id


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transport", choices=["http", "json", "grpc"])
    parser.add_argument("--url", default=os.environ.get("FLOWTRAIL_URL"))
    parser.add_argument("--grpc", default=os.environ.get("FLOWTRAIL_GRPC"))
    parser.add_argument("--key", default=os.environ.get("FLOWTRAIL_API_KEY"))
    args = parser.parse_args()
    if args.key is None:
        parser.error("--key or FLOWTRAIL_API_KEY is required")
    if args.transport == "grpc" and args.grpc is None:
        parser.error("--grpc or FLOWTRAIL_GRPC is required for grpc")
    if args.transport != "grpc" and args.url is None:
        parser.error(f"--url or FLOWTRAIL_URL is required for {args.transport}")

    exporter = FirstBatchTwice(
        exporter_for(args.transport, (args.url or "").rstrip("/"), args.grpc, args.key)
    )
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "competitor-service", "flowtrail.tag.env": "test"}
        )
    )
    # Two spans per export request: the five spans arrive over three requests.
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=2))
    trace_id = run_pipeline(provider.get_tracer("flowtrail.tests.pipeline"))
    provider.shutdown()
    if exporter.failures:
        print(f"{exporter.failures} export(s) failed", file=sys.stderr)
        return 1
    print(f"{trace_id:032x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

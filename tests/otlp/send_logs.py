#!/usr/bin/env python3
"""Sends COUNT logs with the OpenTelemetry Python SDK's OTLP exporter (a real OTLP client).

usage: send_logs.py http|grpc ENDPOINT COUNT [gzip]
Each log is logged inside a span; the script prints the span's trace and span ids (hex) as
JSON on stdout once everything is exported.
"""
import json
import logging
import sys

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

proto, endpoint, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
gzip = len(sys.argv) > 4 and sys.argv[4] == "gzip"

if proto == "http":
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    exporter = OTLPLogExporter(
        endpoint=endpoint + "/v1/logs",
        compression=Compression.Gzip if gzip else Compression.NoCompression,
        timeout=10,
    )
else:
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

    exporter = OTLPLogExporter(
        endpoint=endpoint,
        insecure=True,
        compression=grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression,
        timeout=10,
    )

resource = Resource.create({"service.name": "checkout", "deployment.environment": "test"})
provider = LoggerProvider(resource=resource)
provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
log = logging.getLogger("shop.checkout")
log.setLevel(logging.DEBUG)
log.propagate = False
log.addHandler(handler)

tracer = TracerProvider(resource=resource).get_tracer("shop")
with tracer.start_as_current_span("order") as span:
    ctx = span.get_span_context()
    for i in range(count):
        log.warning("order %d failed", i, extra={"order.id": i, "amount": 12.5})
provider.shutdown()
print(json.dumps({"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}))

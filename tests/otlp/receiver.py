#!/usr/bin/env python3
"""An OTLP logs receiver built on the `opentelemetry-proto` package (Google protobuf) and
grpcio: an independent decoder of what ferrentd's output sends.

usage: receiver.py http|grpc SCRIPT
SCRIPT is a comma-separated list of answers, one per request, the last one repeating:
`200`, `503`, `400`, `partial:N` (200 with partial_success rejecting N records),
`grpc:UNAVAILABLE` (a gRPC status code name). The script prints `PORT <n>` once listening,
then one JSON line per request: {"n", "encoding", "content_type", "request"} where request is
the ExportLogsServiceRequest as protobuf's MessageToDict (proto3 JSON).
"""
import gzip
import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

proto, script = sys.argv[1], sys.argv[2].split(",")
lock = threading.Lock()
count = [0]


def next_answer():
    with lock:
        n = count[0]
        count[0] += 1
    return n, script[min(n, len(script) - 1)]


def report(n, encoding, content_type, req):
    line = json.dumps(
        {"n": n, "encoding": encoding, "content_type": content_type, "request": MessageToDict(req)}
    )
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def response(answer):
    resp = logs_service_pb2.ExportLogsServiceResponse()
    if answer.startswith("partial:"):
        resp.partial_success.rejected_log_records = int(answer.split(":")[1])
        resp.partial_success.error_message = "records too old"
    return resp


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        enc = self.headers.get("Content-Encoding", "")
        if enc == "gzip":
            body = gzip.decompress(body)
        n, answer = next_answer()
        req = logs_service_pb2.ExportLogsServiceRequest()
        req.ParseFromString(body)
        report(n, enc, self.headers.get("Content-Type"), req)
        if answer.isdigit() and answer != "200":
            out = b"{}"
            self.send_response(int(answer))
            self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
        else:
            out = response(answer).SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class Servicer(logs_service_pb2_grpc.LogsServiceServicer):
    def Export(self, request, context):
        n, answer = next_answer()
        enc = dict(context.invocation_metadata()).get("grpc-encoding", "")
        report(n, enc, "grpc", request)
        if answer.startswith("grpc:"):
            context.abort(getattr(grpc.StatusCode, answer.split(":")[1]), "scripted failure")
        return response(answer)


if proto == "http":
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("PORT", srv.server_address[1], flush=True)
    srv.serve_forever()
else:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("PORT", port, flush=True)
    server.wait_for_termination()

#!/usr/bin/env python3
"""A local stand-in for the KubeArmor relay, for trying the kubearmor source.

    python3 scripts/fake-kubearmor-relay.py PORT EVENTS.json [--garbage-first] [--end-streams]

Serves feeder.LogService on 127.0.0.1:PORT with Python grpcio, its messages generated at start
from proto/kubearmor.proto by grpcio-tools. EVENTS.json is {"alerts": [...], "logs": [...],
"messages": [...]}, each item an Alert / Log / Message with the proto field names. HealthCheck
echoes the nonce; WatchAlerts sends the alerts when Filter is all or policy, WatchLogs the logs
when it is all or system (as KubeArmor does), WatchMessages the messages; a stream then stays
open (--end-streams: ends). --garbage-first: the first WatchAlerts sends bytes that are not an
Alert. Each call is printed on stdout ("WatchAlerts filter=policy"). Ctrl-C stops it.
"""
import json
import os
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
from grpc_tools import protoc
from google.protobuf import json_format

args = [a for a in sys.argv[1:] if not a.startswith("--")]
flags = {a for a in sys.argv[1:] if a.startswith("--")}
if len(args) != 2 or flags - {"--garbage-first", "--end-streams"}:
    sys.exit(__doc__)
PORT, EVENTS = int(args[0]), json.load(open(args[1]))

proto_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "proto")
out = tempfile.mkdtemp(prefix="kubearmor-pb-")
if protoc.main(["protoc", "-I" + proto_dir, "--python_out=" + out, "kubearmor.proto"]) != 0:
    sys.exit("cannot generate Python code from proto/kubearmor.proto")
sys.path.insert(0, out)
import kubearmor_pb2 as pb  # noqa: E402

lock = threading.Lock()
garbage_left = ["--garbage-first" in flags]


def log(text):
    with lock:
        print(text, flush=True)


def health(req, ctx):
    log("HealthCheck")
    return pb.ReplyMessage(Retval=req.nonce).SerializeToString()


def streamer(name, cls, key, filters):
    def watch(req, ctx):
        log("%s filter=%s" % (name, req.Filter))
        if filters is not None and req.Filter not in filters:
            return
        if name == "WatchAlerts":
            with lock:
                garbage, garbage_left[0] = garbage_left[0], False
            if garbage:
                yield b"\x0a\xff\xff\xff\xff\x0f"
                return
        for item in EVENTS.get(key, []):
            yield json_format.ParseDict(item, cls()).SerializeToString()
        if "--end-streams" in flags:
            return
        while ctx.is_active():
            time.sleep(0.1)

    return grpc.unary_stream_rpc_method_handler(
        watch,
        request_deserializer=pb.RequestMessage.FromString,
        response_serializer=lambda b: b,
    )


handlers = {
    "HealthCheck": grpc.unary_unary_rpc_method_handler(
        health,
        request_deserializer=pb.NonceMessage.FromString,
        response_serializer=lambda b: b,
    ),
    "WatchAlerts": streamer("WatchAlerts", pb.Alert, "alerts", ("all", "policy")),
    "WatchLogs": streamer("WatchLogs", pb.Log, "logs", ("all", "system")),
    "WatchMessages": streamer("WatchMessages", pb.Message, "messages", None),
}
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("feeder.LogService", handlers),))
server.add_insecure_port("127.0.0.1:%d" % PORT)
server.start()
log("listening on 127.0.0.1:%d" % PORT)
try:
    server.wait_for_termination()
except KeyboardInterrupt:
    server.stop(0)

#!/usr/bin/env python3
"""A local stand-in for Loki or Elasticsearch, for trying the conf.d pipelines.

    python3 scripts/fake-sink.py loki|es PORT

Listens on 127.0.0.1:PORT. loki: POST /loki/api/v1/push -> 204. es: GET / -> a 7.17 version
document; POST .../_bulk -> 200 with every item created. Each request body (gunzipped) is
printed to stdout: a Loki push as one line per stream with its entries, a bulk body as is.
Standard library only; Ctrl-C stops it.
"""
import gzip
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if len(sys.argv) != 3 or sys.argv[1] not in ("loki", "es"):
    sys.exit(__doc__)
MODE, PORT = sys.argv[1], int(sys.argv[2])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, obj=None):
        body = json.dumps(obj).encode() if obj is not None else b""
        self.send_response(code)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(200, {"name": "fake", "version": {"number": "7.17.0"}})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8", "replace")
        print("%s %s" % (self.command, self.path), flush=True)
        if MODE == "loki":
            for s in json.loads(text).get("streams", []):
                print("  stream %s" % json.dumps(s.get("stream"), sort_keys=True), flush=True)
                for ts, line in s.get("values", []):
                    print("    %s %s" % (ts, json.dumps(line)), flush=True)
            self.reply(204)
            return
        lines = [l for l in text.split("\n") if l]
        for l in lines:
            print("  " + l, flush=True)
        items = []
        for action in lines[::2]:
            op = next(iter(json.loads(action)))
            items.append({op: {"status": 201, "result": "created"}})
        self.reply(200, {"took": 1, "errors": False, "items": items})

    def log_message(self, *a):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()

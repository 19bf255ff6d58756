#!/usr/bin/env python3
"""Sends fixed events to in_forward with the Python fluent-logger package.
usage: python_client.py PORT"""
import sys

from fluent import sender

port = int(sys.argv[1])
s = sender.FluentSender("py", host="127.0.0.1", port=port, nanosecond_precision=True)
for i in range(3):
    if not s.emit_with_time("ev", 1700000200 + i, {"i": i, "list": [1, "two", None]}):
        sys.exit("emit failed: %r" % (s.last_error,))
s.close()

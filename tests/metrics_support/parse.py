# Parses a Prometheus text page from stdin with the official Python client and prints
# {family: {"type": T, "help": H, "samples": [[name, {labels}, value], ...]}} as JSON.
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    out[fam.name] = {
        "type": fam.type,
        "help": fam.documentation,
        "samples": [[s.name, s.labels, s.value] for s in fam.samples],
    }
print(json.dumps(out))

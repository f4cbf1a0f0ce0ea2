"""Checks messages against the protocol's JSON Schema (proto/schema/).

Used by rvtest.Client on every line of every integration test, so that the
schema, PROTOCOL.md and the daemon cannot drift apart:

- every line the daemon sends must be valid under `from_daemon`, and a
  result must be valid under `result.METHOD` for the method of the request
  it answers (when the client sent that request as JSON with an id);
- every request the daemon carried out (answered with a result) must have
  been valid under `params.METHOD`: the schema is never stricter than the
  daemon. (Requests answered with an error are not checked: tests send
  invalid ones on purpose.)

Needs python3-jsonschema (Debian 12: 4.10; scripts/deps.sh installs it).
"""
import json
import os

import jsonschema

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto",
                           "schema", "rendezvous.schema.json")


class SchemaError(AssertionError):
    pass


class Checker:
    def __init__(self, path=SCHEMA_PATH):
        with open(path) as f:
            self.schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(self.schema)
        self.validators = {}
        self.seen = set()  # the $defs messages were checked against (test_schema's coverage)

    def validator(self, name):
        """A validator for one of the schema's $defs (the document as its root, so that
        its references resolve)."""
        v = self.validators.get(name)
        if v is None:
            if name not in self.schema["$defs"]:
                raise SchemaError(f"the schema has no $defs/{name}")
            root = {k: v for k, v in self.schema.items() if k != "anyOf"}
            root["$ref"] = "#/$defs/" + name
            v = self.validators[name] = jsonschema.Draft202012Validator(root)
        return v

    def check(self, name, value, what):
        """Raise SchemaError, saying what failed where, unless value is valid under
        $defs/name."""
        errors = sorted(self.validator(name).iter_errors(value), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            where = "".join(f"[{p!r}]" for p in e.absolute_path)
            raise SchemaError(f"{what} is not valid under $defs/{name}: at {where or 'top'}: "
                              f"{e.message}\n  {json.dumps(value)[:2000]}")

    def has(self, name):
        return name in self.schema["$defs"]

    def sent(self, data, pending):
        """Note the requests in data (bytes a client sent): pending[id] = request."""
        for line in data.split(b"\n"):
            try:
                msg = json.loads(line)
            except (ValueError, RecursionError):  # tests send garbage on purpose
                continue
            for m in msg if isinstance(msg, list) else [msg]:
                if (isinstance(m, dict) and isinstance(m.get("method"), str) and "id" in m
                        and isinstance(m["id"], (str, int, float, type(None)))):
                    pending[json.dumps(m["id"])] = m

    def received(self, line, pending):
        """Check one line the daemon sent (bytes, without its newline)."""
        try:
            msg = json.loads(line)
        except RecursionError:
            return  # deeper than Python parses (context data may nest 2,048 deep)
        except ValueError:
            raise SchemaError(f"the daemon sent a line that is not JSON: {line[:200]!r}")
        self.check("from_daemon", msg, "a line from the daemon")
        for m in msg if isinstance(msg, list) else [msg]:
            if "method" in m:
                self.seen.add("notification." + m["method"])
                continue
            if "error" in m:
                self.seen.add("error")
            if "id" not in m:
                continue
            req = pending.pop(json.dumps(m["id"]), None)
            if req is None or "result" not in m:
                continue
            method = req["method"]
            if not self.has("result." + method):
                raise SchemaError(f"the daemon answered {method} with a result, "
                                  f"but the schema knows no such method")
            self.check("result." + method, m["result"], f"the result of {method}")
            self.check("request", req, f"a {method} request the daemon carried out")
            self.seen.update(("result." + method, "params." + method))

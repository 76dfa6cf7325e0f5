"""Reads the events topic from its start with a client that shares no code
with Tessera (confluent-kafka), and validates every message against the
event contract checked in under docs/: the envelope against
schemas/envelope.json, the payload against the schema of its event type and
version, and the key and headers against the envelope.

Prints one JSON object: what was read and every message that did not match.
tests/contract.rs runs it (scripts/test installs the client into a cached
virtualenv); by hand:

    python tests/contract/consume.py --brokers 127.0.0.1:9092 \
        --topic tessera.events --docs docs --expect 100
"""

import argparse
import glob
import json
import os
import sys
import time
import uuid

import jsonschema
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


def load_schemas(docs):
    """The envelope's validator and one per (aggregate, type, version)."""
    checker = jsonschema.Draft7Validator.FORMAT_CHECKER

    def validator(path):
        with open(path) as f:
            schema = json.load(f)
        jsonschema.Draft7Validator.check_schema(schema)
        return jsonschema.Draft7Validator(schema, format_checker=checker)

    envelope = validator(os.path.join(docs, "schemas", "envelope.json"))
    payloads = {}
    for path in glob.glob(os.path.join(docs, "schemas", "*", "*.json")):
        aggregate = os.path.basename(os.path.dirname(path))
        name = os.path.basename(path)[: -len(".json")]
        event_type, version = name.split(".v", 1)
        payloads[(aggregate, event_type, version)] = validator(path)
    return envelope, payloads


def problems_of(message, envelope_validator, payloads):
    """Every way one message breaks the contract (empty: it keeps it)."""
    try:
        envelope = json.loads(message.value())
    except ValueError as e:
        return [f"not JSON: {e}"]
    found = [f"envelope: {e.message} at {list(e.absolute_path)}"
             for e in envelope_validator.iter_errors(envelope)]
    if found:
        return found
    key = (envelope["aggregate_type"], envelope["event_type"], envelope["event_version"])
    validator = payloads.get(key)
    if validator is None:
        return [f"no schema for {key}"]
    found += [f"payload of {key}: {e.message} at {list(e.absolute_path)}"
              for e in validator.iter_errors(envelope["payload"])]
    if (message.key() or b"").decode() != envelope["aggregate_id"]:
        found.append(f"key {message.key()!r} is not the aggregate id {envelope['aggregate_id']}")
    headers = {k: (v or b"").decode() for k, v in (message.headers() or [])}
    for name in ("event_type", "aggregate_type"):
        if headers.get(name) != envelope[name]:
            found.append(f"header {name}={headers.get(name)!r}, envelope says {envelope[name]!r}")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--docs", required=True, help="the folder holding schemas/")
    parser.add_argument("--expect", type=int, required=True,
                        help="stop once this many distinct events were read")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    envelope_validator, payloads = load_schemas(args.docs)
    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        # partitions are assigned by hand: the group is never joined
        "group.id": f"contract-{uuid.uuid4()}",
        "enable.auto.commit": False,
    })
    metadata = consumer.list_topics(args.topic, timeout=10)
    partitions = sorted(metadata.topics[args.topic].partitions)
    if not partitions:
        print(json.dumps({"error": f"topic {args.topic} has no partitions"}))
        return 2
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])

    messages, events, invalid, types = 0, set(), [], set()
    deadline = time.monotonic() + args.timeout
    while len(events) < args.expect and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() != KafkaError._PARTITION_EOF:
                invalid.append({"error": str(message.error())})
            continue
        messages += 1
        found = problems_of(message, envelope_validator, payloads)
        if found:
            invalid.append({"partition": message.partition(), "offset": message.offset(),
                            "problems": found})
            continue
        envelope = json.loads(message.value())
        events.add(envelope["event_id"])
        types.add(f"{envelope['event_type']}@{envelope['event_version']}")
    consumer.close()
    print(json.dumps({
        "partitions": len(partitions),
        "messages": messages,
        "distinct_events": len(events),
        "event_types": sorted(types),
        "schemas": len(payloads),
        "invalid": invalid[:20],
        "invalid_count": len(invalid),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Writes the fuzz targets' seed corpus (fuzz/corpus/<target>/) from the registry's example payloads and a few
hand-made inputs. Re-run after the examples change: python3 tools/fuzz-seeds.py"""

import json
import pathlib

root = pathlib.Path(__file__).resolve().parent.parent
examples = json.loads((root / "crates/hule-contracts/src/examples.json").read_text())
tsv = [line.split("\t") for line in (root / "contracts/events.tsv").read_text().splitlines()[1:] if line.strip()]


def write(target: str, name: str, data: bytes) -> None:
    d = root / "fuzz/corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def envelope(topic: str, payload) -> dict:
    return {
        "event_id": "3f6c1c2e-9a7b-4e1d-8c2a-5b9e0d4f7a11",
        "event_type": topic,
        "event_timestamp": "2025-11-21T18:04:12.345678Z",
        "source_service": "spellchecker_service",
        "schema_version": 1,
        "correlation_id": "a1b2c3d4-e5f6-4789-8abc-def012345678",
        "data_schema_uri": None,
        "data": payload,
        "metadata": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    }


topics = {row[0]: row[3] for row in tsv if len(row) > 3}
for i, (name, payload) in enumerate(sorted(examples.items())):
    topic = topics.get(name, name)
    doc = json.dumps(envelope(topic, payload), separators=(",", ":")).encode()
    # decode_record: the first byte picks the topic (any byte works; the payload decides what is valid).
    write("decode_record", f"{name.lower()}", bytes([i % 256]) + doc)
    if i < 8:
        legacy = dict(envelope(topic, payload), topic=topic, headers={"X-Custom": "1"})
        write("outbox_row", f"legacy-{name.lower()}", b"\n" + json.dumps(legacy).encode())
        write("outbox_row", f"hule-{name.lower()}", b'{"event_id":"3f6c1c2e-9a7b-4e1d-8c2a-5b9e0d4f7a11"}\n' + doc)
        write("dlq_record", f"value-{name.lower()}", doc)
write("decode_record", "nan-and-duplicates", b"\x05" + b'{"event_type":"x","data":{"a":NaN,"a":1},"data":null}')
write("headers", "json", json.dumps({"event_id": "3f6c1c2e-9a7b-4e1d-8c2a-5b9e0d4f7a11", "X-Max-Retries": "3",
                                     "X-Backoff-Ms": "250", "X-Retry-Count": "1",
                                     "occurred_at": "2025-11-21T18:04:12Z"}).encode())
write("headers", "raw", b"X-Max-Retries\xff9999999999\xffX-Backoff-Ms\xff-1\xffevent_id\xff\xfe\xfd")
write("dlq_record", "poison", b"\xffnot json")
write("dlq_record", "letter", json.dumps({
    "original_topic": "huleedu.batch.essays.registered.v1", "original_partition": 0, "original_offset": 7,
    "original_key": "batch-1", "original_event": "/w==", "original_event_encoding": "base64",
    "error_message": "bad", "error_type": "invalid_envelope", "retry_count": 0,
    "failed_at": "2025-11-21T18:04:12Z", "failed_by_service": "svc"}).encode())
write("config", "properties", b"bootstrap.servers=kafka:9093\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
      b"sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"relay\" "
      b"password=\"s3cret\";\nssl.truststore.location=/x.jks\nkey\\\n  continued = value\n")
write("config", "toml", b'brokers = "kafka:9093"\nconfig_file = "/etc/hule/kafka.properties"\n'
      b'[properties]\n"security.protocol" = "SSL"\n')
write("config", "assignments", b"linger.ms=5\n=novalue\nnoequals\nsasl.password=x\n")

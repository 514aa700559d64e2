#!/usr/bin/env bash
# The whole test suite: Rust unit and end-to-end tests (lapin and rumqttc against
# the real binary), then the Python client tests (pika, kombu, amqp-tools,
# paho-mqtt, mosquitto_pub/sub, stomp.py, boto3 and the aws CLI, raw sockets).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import pika, kombu, pytest, paho.mqtt, stomp, websocket, boto3, awscli, selenium' 2>/dev/null; then
    python3 -m pip install -q -r tests/python/requirements.txt
fi
command -v amqp-publish >/dev/null || echo "note: amqp-tools not installed (apt-get install amqp-tools); its test will be skipped" >&2
command -v mosquitto_pub >/dev/null || echo "note: mosquitto-clients not installed (apt-get install mosquitto-clients); those tests will be skipped" >&2
command -v chromedriver >/dev/null || echo "note: chromium-driver not installed (apt-get install chromium chromium-driver); the web console test will be skipped" >&2
command -v rabbitmqadmin >/dev/null || echo "note: rabbitmqadmin not installed (it ships in Debian's rabbitmq-server package); its tests will be skipped" >&2

cargo test --workspace
# The Python tests start target/debug/switchboard, which `cargo test` just built.
python3 -m pytest tests/python -q

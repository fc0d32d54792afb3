"""Publishing to Redis goes through workers/transport.py, which keeps one redis-py client per kombu
channel instead of building one per message: messages still arrive whole, the client is reused, and
publishing works again after Redis restarts; the publisher tells the relay how many messages wait.
On RabbitMQ the app keeps kombu's own transport."""

from __future__ import annotations

import base64
import json

import redis as redis_py

from scn_workflow.app import create_app
from scn_workflow.workers import publisher, transport


def _app(tmp_path, broker_url):
    return create_app({"database_url": f"sqlite:///{tmp_path / 'scn.db'}", "broker_url": broker_url,
                       "instance_path": str(tmp_path), "embedded_autostart": False})


def test_redis_messages_go_out_whole_on_one_client_per_channel(tmp_path, redis_server):
    celery = _app(tmp_path, redis_server.url).extensions["celery"]
    assert celery.conf.broker_transport == "scn_workflow.workers.transport:Transport"
    publish = publisher(celery)
    clients = []
    with celery.producer_or_acquire() as producer:
        assert isinstance(producer.channel, transport.Channel)
    for ids in (["e-1"], ["e-2", "e-3"], ["e-4"]):
        publish("notifications", ids, correlation_id="corr-1")
        with celery.producer_or_acquire() as producer:
            clients.append(producer.channel._scn_client[1])
    assert clients[0] is clients[1] is clients[2]
    queued = redis_py.Redis.from_url(redis_server.url).lrange("notifications", 0, -1)
    messages = [json.loads(raw) for raw in queued]
    arguments = sorted(json.dumps(json.loads(base64.b64decode(m["body"]))[0]) for m in messages)
    assert arguments == ['["e-1"]', '["e-4"]', '[["e-2", "e-3"]]']
    headers = [m["headers"] for m in messages]
    assert {h["task"] for h in headers} == {"scn.notifications"}
    assert {h["argsrepr"] for h in headers} == {"['e-1']", "['e-4']", "[[2 event ids]]"}
    # What the relay asks before it publishes more: the messages no worker has taken yet.
    assert publish.waiting(["notifications"]) == 3
    assert publish.waiting(["checks", "notifications", "handover", "webhooks"]) == 3
    redis_py.Redis.from_url(redis_server.url).delete("notifications")
    assert publish.waiting(["notifications"]) == 0


def test_publishing_works_again_after_redis_restarts(tmp_path, redis_server):
    celery = _app(tmp_path, redis_server.url).extensions["celery"]
    publish = publisher(celery)
    publish("checks", ["before"])
    redis_server.stop()
    try:
        publish("checks", ["while-down"])
        raised = False
    except Exception:  # noqa: BLE001 - the relay leaves such rows to the sweep
        raised = True
    assert raised, "a publish to a stopped Redis must fail, not vanish"
    redis_server.start()
    publish("checks", ["after"])
    queued = redis_py.Redis.from_url(redis_server.url).llen("checks")
    assert queued == 1  # the new server holds the message published after the restart


def test_rabbitmq_keeps_kombus_own_transport(tmp_path, rabbitmq_vhost):
    celery = _app(tmp_path, rabbitmq_vhost.url).extensions["celery"]
    assert celery.conf.broker_transport is None
    assert publisher(celery).waiting is None  # the relay goes by the outbox instead
    with celery.producer_or_acquire() as producer:
        assert not isinstance(producer.channel, transport.Channel)

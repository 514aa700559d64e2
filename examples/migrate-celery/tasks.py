"""A Celery app as it runs against RabbitMQ: kombu over AMQP for the broker, the
`rpc://` result backend (replies over AMQP too). Nothing in it knows about
Switchboard: Celery reads the broker URL from CELERY_BROKER_URL."""

import os
import time

from celery import Celery

app = Celery("shop", backend="rpc://")
app.conf.update(
    task_acks_late=True,                 # ack after the task ran: a crash redelivers it
    worker_prefetch_multiplier=1,
    task_default_queue="shop",
    task_routes={"tasks.thumbnail": {"queue": "images"}},
    broker_connection_retry_on_startup=True,
)

attempts = {}


@app.task
def add(x, y):
    return x + y


@app.task
def thumbnail(image_id):
    time.sleep(0.05)                     # the work
    return {"image": image_id, "worker": os.environ.get("WORKER_NAME", "?"),
            "pid": os.getpid()}


@app.task(bind=True, max_retries=3)
def charge(self, order_id, amount):
    """Fails the first time for each order (a flaky payment gateway), then succeeds."""
    key = f"{order_id}"
    attempts[key] = attempts.get(key, 0) + 1
    if self.request.retries == 0:
        raise self.retry(countdown=1, exc=RuntimeError("gateway timeout"))
    return {"order": order_id, "charged": amount, "retries": self.request.retries}

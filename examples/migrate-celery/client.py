"""The app's client side, unchanged from its RabbitMQ days: sends tasks and waits for
their results (CELERY_BROKER_URL picks the broker)."""

import json
import sys
import time

from celery import group

from tasks import add, charge, thumbnail

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
t0 = time.monotonic()
out = {"add": add.delay(2, 3).get(timeout=30)}
res = group(thumbnail.s(i) for i in range(n)).apply_async()
thumbs = res.get(timeout=60)
out["thumbnails"] = len(thumbs)
out["thumbnail_workers"] = sorted({t["worker"] for t in thumbs})
pending = [charge.delay(f"o{i}", 10 * i) for i in range(3)]
out["charges"] = [r.get(timeout=30) for r in pending]
out["seconds"] = round(time.monotonic() - t0, 2)
print(json.dumps(out))

"""Real Celery on the machine's Redis, sending task events, for tests/celery_events.rs.

    python3 celery_redis.py worker BROKER PREFIX QUEUE HOSTNAME CONCURRENCY HEARTBEAT [EVENTS]
        a worker on QUEUE named HOSTNAME (e.g. celery@fake-pod-1), CONCURRENCY threads, a heartbeat
        every HEARTBEAT seconds, task events on (-E) unless EVENTS is "no-events"
    python3 celery_redis.py publish BROKER PREFIX QUEUE SECONDS COUNT [PER_SECOND]
        COUNT tasks that each sleep SECONDS, at PER_SECOND tasks a second (all at once without it)

PREFIX is kombu's `global_keyprefix` transport option ("-" for none): every test uses its own, so
that tests running side by side never see each other's queues or events.
"""

import sys
import time

from celery import Celery


def app(broker, prefix, queue):
    celery = Celery("queue_autoscaler_events_test", broker=broker)
    options = {} if prefix == "-" else {"global_keyprefix": prefix}
    celery.conf.update(
        broker_transport_options=options,
        task_default_queue=queue,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_enable_remote_control=False,
        task_ignore_result=True,
    )

    @celery.task(name="queue_autoscaler_test.sleep")
    def sleep(seconds):
        time.sleep(seconds)

    return celery, sleep


def worker(broker, prefix, queue, hostname, concurrency, heartbeat, events="events"):
    celery, _ = app(broker, prefix, queue)
    argv = ["worker", "--pool=threads", f"--concurrency={concurrency}", "--queues", queue,
            "--without-gossip", "--without-mingle", "--loglevel=WARNING", "--hostname", hostname,
            f"--heartbeat-interval={heartbeat}"]
    if events != "no-events":
        argv.append("-E")
    celery.worker_main(argv=argv)


def publish(broker, prefix, queue, seconds, count, per_second=None):
    _, sleep = app(broker, prefix, queue)
    started = time.monotonic()
    for i in range(int(count)):
        if per_second:
            delay = started + i / float(per_second) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        sleep.apply_async(args=[float(seconds)], queue=queue)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "worker":
        worker(*args)
    elif command == "publish":
        publish(*args)
    else:
        sys.exit(f"unknown command {command}")

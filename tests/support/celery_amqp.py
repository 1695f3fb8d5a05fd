"""Real Celery on the machine's RabbitMQ, for tests/rabbitmq.rs.

    python3 celery_amqp.py publish BROKER QUEUE PRIORITY... publishes one task per priority, on a
                                                            priority queue (x-max-priority 10)
    python3 celery_amqp.py worker BROKER QUEUE PREFETCH      consumes QUEUE with acks_late and a
                                                            prefetch of PREFETCH, each task sleeping:
                                                            it holds PREFETCH messages unacked

Both declare QUEUE the way Celery does (kombu, on first use), as a priority queue.
"""

import sys
import time

from celery import Celery
from kombu import Queue


def app(broker, queue, prefetch=1):
    celery = Celery("queue_autoscaler_test", broker=broker)
    celery.conf.update(
        task_queues=[Queue(queue, routing_key=queue, queue_arguments={"x-max-priority": 10})],
        task_default_queue=queue,
        task_acks_late=True,
        worker_prefetch_multiplier=prefetch,
        worker_concurrency=1,
        broker_connection_retry_on_startup=False,
        worker_hijack_root_logger=False,
        worker_enable_remote_control=False,
    )

    @celery.task(name="queue_autoscaler_test.sleep")
    def sleep(seconds):
        time.sleep(seconds)

    return celery, sleep


def publish(broker, queue, priorities):
    _, sleep = app(broker, queue)
    for priority in priorities:
        sleep.apply_async(args=[600], queue=queue, priority=int(priority))


def worker(broker, queue, prefetch):
    celery, _ = app(broker, queue, prefetch)
    celery.worker_main(
        argv=["worker", "--pool=solo", "--queues", queue, "--without-gossip", "--without-mingle",
              "--without-heartbeat", "--loglevel=WARNING", "--hostname", f"test-{queue}@localhost"]
    )


if __name__ == "__main__":
    command, broker, queue, *rest = sys.argv[1:]
    if command == "publish":
        publish(broker, queue, rest)
    elif command == "worker":
        worker(broker, queue, int(rest[0]))
    else:
        sys.exit(f"unknown command {command}")

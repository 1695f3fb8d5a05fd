"""A peer for benches/celery_events.rs: Celery's own event consumer, as Flower runs it —
`app.events.Receiver` feeding `celery.events.state.State` (celery `celery/events/receiver.py`,
`celery/events/state.py`) — following the same traffic as the daemon until it is killed.

    python3 celery_events_state.py BROKER GLOBAL_KEYPREFIX

On SIGTERM it prints one JSON line: the events it handled and the workers alive in its State.
"""

import json
import os
import signal
import sys

from celery import Celery


def main(broker, prefix):
    app = Celery("queue_autoscaler_bench_peer", broker=broker)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    state = app.events.State()
    seen = {"events": 0}

    def on_event(event):
        seen["events"] += 1
        state.event(event)

    def stop(*_):
        workers = sum(1 for w in state.workers.values() if w.alive)
        print(json.dumps({"events": seen["events"], "workers": workers}), flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    with app.connection() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": on_event})
        receiver.capture(limit=None, timeout=None, wakeup=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

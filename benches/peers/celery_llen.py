"""redis-py's depth poll of many Celery lists, for benches/celery.rs: one LLEN per key, all
sent in one pipeline (transaction=False: no MULTI/EXEC), summed. The connection is opened and
warmed up before the timed polls. The handshake with the bench is in peer.py.
"""

import redis

import peer


def main():
    job = peer.read_job()
    keys = job["keys"]
    client = redis.Redis.from_url(job["url"])

    def poll():
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.llen(key)
        return sum(pipe.execute())

    peer.serve(job, poll, f"redis-py {redis.__version__}")
    client.close()


if __name__ == "__main__":
    main()

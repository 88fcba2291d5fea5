#!/usr/bin/env python3
"""Drives Stampede's KV server with the Python `redis` package, the way a
user's application would. Usage: kv_client_test.py HOST:PORT. Exits non-zero
with the failed assertion on any difference from Redis's behaviour."""

import sys
import time

import redis


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    r = redis.Redis(host=host, port=int(port), decode_responses=True)
    assert r.ping() is True
    r.flushall()

    # Strings, options and integers.
    assert r.set("k", "v") is True
    assert r.get("k") == "v"
    assert r.set("k", "w", nx=True) is None
    assert r.set("k", "w", xx=True, get=True) == "v"
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "missing", "b") == ["1", None, "2"]
    assert r.incr("n") == 1 and r.incrby("n", 41) == 42 and r.decr("n") == 41
    assert r.append("s", "hello") == 5 and r.strlen("s") == 5
    assert r.exists("a", "b", "missing") == 2
    assert r.delete("a", "b") == 2
    try:
        r.incr("s")
        raise AssertionError("INCR on a non-integer must fail")
    except redis.ResponseError as error:
        assert "not an integer" in str(error)

    # Expiry.
    assert r.set("t", "x", px=150) is True
    assert 0 < r.pttl("t") <= 150
    assert r.expire("k", 100) is True and r.ttl("k") == 100
    time.sleep(0.3)
    assert r.get("t") is None and r.ttl("t") == -2

    # Lists and hashes, and WRONGTYPE.
    assert r.rpush("l", "a", "b", "c") == 3 and r.lpush("l", "z") == 4
    assert r.lrange("l", 0, -1) == ["z", "a", "b", "c"]
    assert r.lpop("l") == "z" and r.rpop("l", 2) == ["c", "b"]
    assert r.ltrim("l", 0, 0) is True and r.llen("l") == 1
    assert r.hset("h", mapping={"f1": "v1", "f2": "v2"}) == 2
    assert r.hget("h", "f1") == "v1" and r.hlen("h") == 2
    assert r.hgetall("h") == {"f1": "v1", "f2": "v2"}
    assert r.hdel("h", "f1", "nope") == 1
    try:
        r.lpush("k", "x")
        raise AssertionError("LPUSH on a string must fail")
    except redis.ResponseError as error:
        assert str(error).startswith("WRONGTYPE")

    # Pipelines.
    pipe = r.pipeline(transaction=False)
    for i in range(100):
        pipe.set(f"p{i}", i)
    pipe.get("p99")
    assert pipe.execute()[-1] == "99"

    # Pub/sub.
    sub = r.pubsub()
    sub.subscribe("news")
    assert sub.get_message(timeout=2)["type"] == "subscribe"
    assert r.publish("news", "hello") == 1
    message = sub.get_message(timeout=2)
    assert message["type"] == "message" and message["data"] == "hello", message
    sub.unsubscribe("news")
    sub.close()

    # Server commands.
    info = r.info("server")
    assert "node_id" in info, info
    assert r.dbsize() > 0
    assert r.client_setname("py") is True and r.client_getname() == "py"
    assert isinstance(r.client_id(), int)
    assert r.config_get("appendonly") == {"appendonly": "no"}
    print("python redis client: all checks passed")


if __name__ == "__main__":
    main()

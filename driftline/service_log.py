"""What a long-running driftline process says: broker connectivity once per change, ready lines.

Kafka clients retry a broker that is down on their own, and say so on every
attempt: librdkafka logs a ``FAIL`` line per connection attempt (~20 a
second per client), aiokafka an error per metadata refresh. A user reading a
terminal needs two lines, not thousands: ``broker 127.0.0.1:19092
unreachable, retrying`` when it goes, ``broker 127.0.0.1:19092 reachable
again`` when it comes back.

``BrokerWatch`` (one per bootstrap string and process, ``watch(bootstrap)``)
takes the clients' failure reports (librdkafka's ``error_cb`` and log
callback, configured by ``client_logging``; the worker's aiokafka loggers
through ``quiet_aiokafka``), confirms them with its own probe (a TCP connect
to the bootstrap servers, in a thread) and logs the transitions on the
``driftline.broker`` logger. A broker that accepts connections while the
clients still fail (a wrong security protocol, say) is reported with the
client's error, at most once a minute. Everything librdkafka logs goes
through the ``driftline.kafka.librdkafka`` logger: connection failures at
DEBUG (the watch reports them), the rest at its own level, a repeat of the
same facility at most once a minute.

``ready_line(...)`` logs a process's ready line (``worker ready: consuming …``)
on ``driftline.ready``, at INFO, to stderr whatever level the rest of the
process logs at (faust's worker runs at WARNING).

``require_broker`` is the one-line answer for commands that need the broker
now (``ack``, ``rereference``, the worker at start-up).

Examples
--------
>>> from driftline.local_infra import free_port
>>> port = free_port()
>>> reachable(f"127.0.0.1:{port}", timeout_s=0.5)
False
>>> try:
...     require_broker(f"127.0.0.1:{port}", timeout_s=0.5)
... except TransientError as exc:
...     print(str(exc).replace(str(port), "P").split(";")[0])
broker 127.0.0.1:P unreachable (nothing answers there)
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from driftline.errors import TransientError

log = logging.getLogger("driftline.broker")
librdkafka_log = logging.getLogger("driftline.kafka.librdkafka")
ready_log = logging.getLogger("driftline.ready")

# How often the probe tries the broker while it is down.
PROBE_EVERY_S = 2.0
# A repeated message (same facility) is logged at most once per this period.
REPEAT_EVERY_S = 60.0
# librdkafka error codes that mean "cannot talk to the broker" (confluent_kafka.KafkaError).
_TRANSPORT, _ALL_BROKERS_DOWN, _RESOLVE = -195, -187, -193
UNREACHABLE_CODES = frozenset({_TRANSPORT, _ALL_BROKERS_DOWN, _RESOLVE})
# aiokafka / faust messages that are connection failures (the watch reports them).
_AIOKAFKA_CONNECTION = (
    "Unable connect to", "Unable to connect", "Connect call failed", "Unable to update metadata",
    "Unable to request metadata", "KafkaConnectionError", "NodeNotReadyError",
    "Connection refused", "Unable to bootstrap", "Failed fetch messages", "RequestTimedOutError",
    "Got error produce response", "Coordinator dead", "Marking the coordinator dead",
    "No connection to node", "Error sending", "broken pipe", "Connection reset",
)


def _hosts(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        if "://" in host:
            host = host.split("://", 1)[1]
        if host and port.isdigit():
            out.append((host.strip("[]"), int(port)))
    return out


def reachable(bootstrap: str, timeout_s: float = 1.0) -> bool:
    """True when one of the bootstrap servers accepts a TCP connection."""
    for host, port in _hosts(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return True
        except OSError:
            continue
    return False


class BrokerWatch:
    """Connectivity of one bootstrap string: failure reports in, one line per change out.

    Parameters
    ----------
    bootstrap
        The clients' ``bootstrap.servers``.
    probe_every_s
        How often the probe retries while the broker is down.
    """

    def __init__(self, bootstrap: str, probe_every_s: float = PROBE_EVERY_S) -> None:
        self.bootstrap = bootstrap
        self.probe_every_s = probe_every_s
        self.down = False
        self.changes = 0  # state changes logged (tests read it)
        self._lock = threading.RLock()
        self._last_failure = 0.0
        self._detail = ""
        self._probe: threading.Thread | None = None
        self._last_stuck_log = float("-inf")

    def failure(self, detail: str) -> None:
        """A client could not talk to the broker; cheap, from any thread."""
        with self._lock:
            self._last_failure = time.monotonic()
            self._detail = detail
            if self._probe is None:
                self._probe = threading.Thread(target=self._run, daemon=True,
                                               name="driftline-broker-probe")
                self._probe.start()

    def _run(self) -> None:
        misses = 0
        while True:
            ok = reachable(self.bootstrap)
            misses = 0 if ok else misses + 1
            say, done = None, False
            with self._lock:  # never log while holding it: a handler may report a failure
                now = time.monotonic()
                # Two failed probes a probe interval apart: a loaded machine's slow
                # connect is not an outage.
                if misses >= 2 and not self.down:
                    self.down, self.changes = True, self.changes + 1
                    say = f"broker {self.bootstrap} unreachable, retrying"
                elif ok and self.down:
                    self.down, self.changes = False, self.changes + 1
                    say = f"broker {self.bootstrap} reachable again"
                elif ok and now - self._last_stuck_log >= REPEAT_EVERY_S and \
                        now - self._last_failure < 1.0:
                    # It accepts connections, yet the clients fail: say why, rarely.
                    self._last_stuck_log = now
                    say = (f"broker {self.bootstrap} accepts connections but the client "
                           f"reports: {self._detail[:300]}")
                if ok and now - self._last_failure >= self.probe_every_s:
                    self._probe, done = None, True
            if say is not None:
                log.warning(say)
            if done:
                return
            time.sleep(self.probe_every_s if not ok else min(1.0, self.probe_every_s))


_watches: dict[str, BrokerWatch] = {}
_watches_lock = threading.Lock()


def watch(bootstrap: str) -> BrokerWatch:
    """The process's watch of ``bootstrap`` (one per bootstrap string)."""
    with _watches_lock:
        w = _watches.get(bootstrap)
        if w is None:
            w = _watches[bootstrap] = BrokerWatch(bootstrap)
        return w


class _RateLimit:
    def __init__(self, every_s: float = REPEAT_EVERY_S) -> None:
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, float("-inf")) < self.every_s:
                return False
            if len(self._last) > 256:  # bounded: facilities are few, but never trust that
                self._last.clear()
            self._last[key] = now
            return True


class LibrdkafkaLog:
    """librdkafka's log callback (the ``logger`` property): into the project's logging."""

    def __init__(self, w: BrokerWatch | None) -> None:
        self._watch = w
        self._limit = _RateLimit()

    def log(self, level: int, fmt: str, *args: Any) -> None:
        facility = str(args[0]) if args else ""
        text = fmt % args if args else fmt
        if facility == "FAIL" or "brokers are down" in text:
            if self._watch is not None:
                self._watch.failure(text)
            librdkafka_log.debug(text)
        elif level < logging.WARNING or self._limit.allow(facility):
            librdkafka_log.log(level, text)
        else:
            librdkafka_log.debug(text)


def client_logging(bootstrap: str, *, report: bool = True) -> dict[str, Any]:
    """``logger`` and ``error_cb`` properties for a confluent-kafka client of ``bootstrap``.

    ``report=False``: failures go to DEBUG only (a readiness probe that
    expects them).
    """
    w = watch(bootstrap) if report else None
    limit = _RateLimit()

    def on_error(err: Any) -> None:
        if err.code() in UNREACHABLE_CODES:
            if w is not None:
                w.failure(err.str())
            return
        if err.fatal():
            log.error("kafka client error: %s: %s", err.name(), err.str())
        elif limit.allow(err.name()):
            log.warning("kafka client error: %s: %s", err.name(), err.str())

    return {"logger": LibrdkafkaLog(w), "error_cb": on_error}


class _AiokafkaFilter(logging.Filter):
    """Drops aiokafka's and faust's connection-failure records; the watch reports them."""

    def __init__(self, w: BrokerWatch) -> None:
        super().__init__()
        self._watch = w

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        if any(marker.lower() in text.lower() for marker in _AIOKAFKA_CONNECTION):
            self._watch.failure(text[:500])
            return False
        return True


def quiet_aiokafka(bootstrap: str) -> Callable[[], None]:
    """Route aiokafka's and faust's connection failures to ``watch(bootstrap)``.

    The filter goes on every ``aiokafka*``, ``faust*`` and ``mode*`` logger
    (module loggers, created at import: the faust driver that imports all of
    aiokafka is imported first). Returns a function that removes it.
    """
    import faust.transport.drivers.aiokafka  # noqa: F401 - creates the loggers filtered here

    filt = _AiokafkaFilter(watch(bootstrap))
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name.split(".")[0] in ("aiokafka", "faust", "mode")]
    for lg in loggers:
        lg.addFilter(filt)

    def remove() -> None:
        for lg in loggers:
            lg.removeFilter(filt)

    return remove


def require_broker(bootstrap: str, options: dict[str, str] | None = None, *,
                   timeout_s: float = 5.0) -> None:
    """Return if the broker answers a metadata request within ``timeout_s``; else one line.

    Raises ``TransientError`` naming the broker and the remedy, instead of a
    client retrying for its delivery timeout (30 s) and failing with
    ``_MSG_TIMED_OUT``.
    """
    remedy = ("start it (`driftline up` for a local one) or point DRIFTLINE_BOOTSTRAP_SERVERS "
              "at a running broker")
    if not reachable(bootstrap, timeout_s=min(timeout_s, 2.0)):
        raise TransientError(f"broker {bootstrap} unreachable (nothing answers there); {remedy}")
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, **(options or {}),
                         **client_logging(bootstrap, report=False)})
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise TransientError(f"broker {bootstrap} does not answer Kafka requests "
                             f"({exc.args[0].str() if exc.args else exc}); {remedy}") from None


def service_logging() -> None:
    """Log WARNING and above, and the ready lines, to stderr with a timestamp (idempotent).

    Leaves a process that already configured logging (faust's worker) as it is.
    """
    if not logging.root.handlers:
        logging.basicConfig(level=logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def ready_line(what: str, consuming: list[str], detail: str = "") -> None:
    """Log ``<what> ready: consuming <topics>[ (detail)]`` on ``driftline.ready``, to stderr."""
    if not ready_log.handlers:
        handler = logging.StreamHandler(sys.__stderr__)  # not a redirected stderr (faust)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        ready_log.addHandler(handler)
        ready_log.setLevel(logging.INFO)
        ready_log.propagate = False
    ready_log.info("%s ready: consuming %s%s", what, ", ".join(consuming),
                   f" ({detail})" if detail else "")


def require_redis(url: str, *, timeout_s: float = 2.0) -> None:
    """Return if Redis at ``url`` answers ``PING``; else a one-line ``TransientError``."""
    import redis

    from driftline.errors import redact

    client = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                  socket_connect_timeout=timeout_s)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise TransientError(
            f"redis {redact(url)} unreachable ({exc}); start it (`driftline up` for a local "
            "one) or point DRIFTLINE_REDIS_URL at a running Redis") from None
    finally:
        client.close()

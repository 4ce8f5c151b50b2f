"""Serve the API and page with uvicorn: in the foreground (``driftline api``) or a thread.

Without ``DRIFTLINE_API__TOKEN`` the API is unauthenticated: it then listens on
loopback only (another host is a ``ConfigError`` naming the token) and warns
once.

Examples
--------
>>> check_bind("127.0.0.1", None), check_bind("0.0.0.0", "a-long-enough-token")
(False, True)
>>> check_bind("0.0.0.0", None)
Traceback (most recent call last):
...
driftline.errors.ConfigError: DRIFTLINE_API__TOKEN: required to listen on '0.0.0.0' (not \
loopback); without a token the API listens on loopback only
"""

from __future__ import annotations

import ipaddress
import logging
import sys
import threading
import time
from collections.abc import Callable

import uvicorn

from driftline.api.app import create_app
from driftline.errors import ConfigError, TransientError
from driftline.local_infra import free_port
from driftline.settings import Settings

log = logging.getLogger("driftline.api")

LOOPBACK_NAMES = ("localhost",)


def _loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> bool:
    """Whether the API is authenticated; ``ConfigError`` for an open non-loopback bind."""
    if token is None and not _loopback(host):
        raise ConfigError("DRIFTLINE_API__TOKEN", f"required to listen on {host!r} (not "
                          "loopback); without a token the API listens on loopback only")
    return token is not None


class ApiServer:
    """The API in a background thread (tests, ``driftline demo``); ``url`` once started."""

    def __init__(self, settings: Settings, *, port: int | None = None) -> None:
        api = settings.api
        secret = api.token.get_secret_value() if api.token else None
        if not check_bind(api.host, secret):
            log.warning("the API has no token (DRIFTLINE_API__TOKEN): anyone on this machine "
                        "can use it and publish controls; listening on %s only", api.host)
        self.host = api.host
        chosen = api.port if port is None else port
        self.port = chosen or free_port(api.host)
        config = uvicorn.Config(create_app(settings), host=self.host, port=self.port,
                                log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, timeout_s: float = 20.0) -> ApiServer:
        self._thread = threading.Thread(target=self.server.run, name="driftline-api",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise TransientError(f"the API did not start on {self.url}")
            time.sleep(0.05)
        return self

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)

    def linger(self, say: Callable[[str], None], *, interactive: bool | None = None) -> None:
        """Say the page's URL; serve until Ctrl-C if ``interactive`` (stdin is a TTY); stop.

        What ``driftline demo`` ends with: run by hand, the page stays up to
        look at; run by a test or CI (no TTY), it returns at once.
        """
        if interactive is None:
            interactive = sys.stdin.isatty()
        say(f"the operator's page: {self.url}" + (" (serving until Ctrl-C)" if interactive
                                                 else ""))
        try:
            while interactive and self.alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            say("stopped")
        finally:
            self.stop()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

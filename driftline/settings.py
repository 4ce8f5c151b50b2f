"""One frozen settings model, read from ``DRIFTLINE_*`` environment variables.

Nested groups use ``__`` as the delimiter (``DRIFTLINE_MONITOR__ERT=20000``).
An unknown ``DRIFTLINE_*`` variable is an error, not a silent no-op, so a
misspelt setting fails at start-up with its name in the message.

Examples
--------
>>> s = Settings(topic_prefix="acme")
>>> s.topics.alerts
'acme.alerts'
>>> Settings(bootstrap_servers="")
Traceback (most recent call last):
...
driftline.errors.ConfigError: DRIFTLINE_BOOTSTRAP_SERVERS: ...
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from driftline.errors import ConfigError, redact, redact_url

ENV_PREFIX = "DRIFTLINE_"
STALE_AFTER_S = 3600.0
"""``DRIFTLINE_API__STALE_AFTER_S``'s default (``Settings.stale_after_s``)."""

# --- security (issue #12) ---
KAFKA_OPTION = re.compile(r"^[a-z][a-z0-9.]{0,99}$")  # librdkafka names: no "_"
KAFKA_OPTIONS_OWNED = {
    "bootstrap.servers": "DRIFTLINE_BOOTSTRAP_SERVERS",
    "group.id": "DRIFTLINE_CONSUMER_GROUP",
    "enable.auto.commit": "offsets are committed after each effect",
    "enable.idempotence": "the publisher is always idempotent",
}


class Topics(BaseModel):
    """Topic names, all under one prefix."""

    model_config = ConfigDict(frozen=True)

    prefix: str

    @property
    def frames(self) -> str:
        return f"{self.prefix}.frames"

    @property
    def predictions(self) -> str:
        return f"{self.prefix}.predictions"

    @property
    def labels(self) -> str:
        return f"{self.prefix}.labels"

    @property
    def embeddings(self) -> str:
        return f"{self.prefix}.embeddings"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def state(self) -> str:
        return f"{self.prefix}.state"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}.dead-letter"

    @property
    def control(self) -> str:
        """Operator commands (``Command``), keyed by stream like the inputs."""
        return f"{self.prefix}.control"

    def all(self) -> list[str]:
        return [
            self.frames,
            self.predictions,
            self.labels,
            self.embeddings,
            self.alerts,
            self.state,
            self.dead_letter,
            self.control,
        ]


class MonitorSettings(BaseModel):
    """What the per-stream monitor does; see ``processors.monitor``. Plain data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # -- detection budget and persistence (issue #11) ---------------------------------
    # The budget is set in the operator's unit (false alarms per camera per week)
    # and turned into an ERT in events with the stream's event rate, measured from
    # event ``ts`` over its first ``reference_size`` events
    # (processors.monitor.stream_monitor.EventRate). ``ert`` stays as the
    # low-level override; without usable timestamps (events stamped when built,
    # > MAX_EVENT_RATE events/s) the monitor falls back to ``FALLBACK_ERT``
    # events and no persistence, which is what it did before.
    ert: float | None = Field(
        default=None,
        gt=10,
        description="Expected events between false alarms, per stream, all signals together. "
        "Unset: derived from `false_alarms_per_week` and the stream's measured event rate "
        "(10,000 when the rate cannot be measured).",
    )
    false_alarms_per_week: float = Field(
        default=1.0, gt=0, le=10_000, description="False-alarm budget per stream (camera x "
        "model version) per week, all signals together; turned into an ERT in events with the "
        "stream's event rate measured from event `ts`. `ert` overrides it.")
    min_duration: float = Field(
        default=45.0, ge=0, le=86_400, description="Seconds a change must last before it "
        "raises a drift alert: a CUSUM signal whose detector fires is confirmed only if its "
        "level is still beyond its tolerance this long after the estimated change point "
        "(people walking through the view for 10-40 s are transient). Converted to each "
        "signal's updates with the stream's measured event rate; 0 (or no usable `ts`) = "
        "alert when the detector fires.")
    global_min_duration: float = Field(
        default=2.0, ge=0, le=86_400, description="Seconds a change must last when it is "
        "global: when every frame since the change point was calm in the 4x4 tiles (nothing "
        "local moved, or at least 3/4 of the tiles changed at once: blur, haze, exposure, a "
        "new scene), a detection is confirmed after this instead of `min_duration` "
        "(passers-by are local and keep `min_duration`). 0 = off.")
    frozen_after_s: float = Field(
        default=2.0, ge=0, le=86_400, description="Seconds of repeated frames (tile statistics "
        "identical to the previous frame's) before `quality.frozen` alerts; its own duration, "
        "not `min_duration` (a live camera never repeats a frame exactly: sensor noise). "
        "0 = as soon as its detector fires (~15 repeated frames).")
    min_duration_by_signal: dict[str, float] = Field(
        default={}, description="`min_duration` for named signals, in seconds, as JSON: "
        '{"output.confidence": 30, "output.entropy": 30}. Model-output signals have no tiles, '
        "so the calm-tiles fast path never shortens their hold: a deployment whose outputs "
        "have no transients (a class the camera never showed, in view for 10-40 s) can "
        "shorten it for them alone and keep the frames' hold for passers-by (bench/README.md: "
        "30 s kept 0 false alarms in a simulated camera-week and took 150 predictions off each "
        "sudden output shift at 10/s). Names must be signals of the catalogue (checked when "
        "monitors start); `quality.frozen` has `frozen_after_s`.")
    # -- end of detection budget and persistence ----------------------------------------
    reference_size: int = Field(default=200, ge=50, le=100_000)
    class_mix_reference_size: int = Field(
        default=2000, ge=50, le=100_000, description="Predictions that form the reference of "
        "the class-mix test. A classifier's top-1 mix on a wandering camera moves on a scale of "
        "minutes: a 200-prediction reference fired every ~1,500 frames on real video, 2,000 "
        "did not (bench/README.md).")
    pca_components: int = Field(default=8, ge=1, le=256)
    cooldown: int = Field(default=200, ge=0, description="Events after an alert before the "
                          "same signal may alert again.")
    label_join_window: int = Field(default=10_000, ge=1, description="Predictions kept for "
                                   "joining late labels (bounded).")
    baseline_halflife: int = Field(
        default=300, ge=0, description="Half-life (events) of the tracking baseline of image-"
        "quality and embedding signals: slower natural wander is followed, faster changes "
        "alert. 0 = fixed reference.")
    edge_learners: bool = Field(
        default=False, description="Run the river online learners (outlier scorer, retrain "
        "head) on edge embeddings (Prediction.embedding) too. They always run on the "
        "embedder's vectors, where they add ~0.3 ms to a frame that took ~12 ms to embed; on "
        "edge predictions they would cut the monitor from ~25,000 to ~3,000 events/s per core.")
    embedding_dim: int | None = Field(
        default=None, ge=1, description="Length of `embedding` vectors; the worker sets it from "
        "the embedder's manifest. Unset: the most common length among the stream's first "
        "`edge_quorum` vectors fixes it.")
    # --- input safety (issue #12): the edge dimension from configuration ----------------
    edge_dims: dict[str, PositiveInt] = Field(
        default={}, description="Length of edge vectors (`Prediction.embedding`) by "
        'model version, as JSON: {"v1": 512, "*": 256} ("*": any other version). Unset for a '
        "version: the most common length among its stream's first `edge_quorum` vectors fixes "
        "it (the minority is left out of the reference, later misfits are dead-lettered).")
    edge_quorum: int = Field(default=5, ge=1, le=100, description="The first vectors of a "
                             "stream's embedding source (edge, or embedding without "
                             "`embedding_dim`) that vote on its dimension when it is not "
                             "configured.")
    # --- end of input-safety block -------------------------------------------------------
    # exclude=True: the path is where this process finds bundles, not part of a
    # monitor's checkpoint -- a snapshot restored on another machine (where the
    # path does not exist) must not fail validation.
    reference_path: Path | None = Field(
        default=None, exclude=True, description="A reference bundle (JSON, from `driftline "
        "reference export`) or a directory of them, one per stream/model version: a new "
        "monitor of such a stream starts calibrated from its bundle instead of warming up. "
        "Read and checked at start-up by the commands that run monitors "
        "(processors.bundles.load_bundles).")

    @field_validator("min_duration_by_signal")
    @classmethod
    def _holds(cls, v: dict[str, float]) -> dict[str, float]:
        # Which names exist is the catalogue's (processors.monitor.catalogue,
        # above this module): MonitorRegistry checks them when monitors start.
        for name, seconds in v.items():
            if not re.fullmatch(r"[a-z]+\.[a-z0-9_]+", name):
                raise ValueError(f"{name!r} is not a signal name (<family>.<signal>)")
            if not 0 <= seconds <= 86_400:
                raise ValueError(f"{name}: {seconds:g} s is outside 0-86,400")
            if name == "quality.frozen":
                raise ValueError("quality.frozen has its own duration: set frozen_after_s")
        return v


class EmbedderSettings(BaseModel):
    """The ONNX backbone that turns frames into embeddings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_path: Path | None = Field(
        default=None, description="ONNX file; default: the packaged EfficientNet-Lite0."
    )
    manifest_path: Path | None = Field(
        default=None, description="JSON manifest of the model (input size, scaling, outputs)."
    )
    threads: int = Field(default=1, ge=1, le=64)
    batch_size: int = Field(default=16, ge=1, le=512)
    batch_wait_ms: int = Field(default=20, ge=0, le=10_000)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    precision: Literal["fp32", "int8"] = Field(
        default="fp32", description="int8: run a static int8 quantization of the model "
        "(made once into `int8_dir`, calibrated on the `sim` extra's photos; ~2x frames/s, "
        "embedding cosine ~0.99 to fp32: bench/README.md).")
    int8_dir: Path = Field(default=Path(".driftline/models"), description="Where the int8 "
                           "model is written at first use (and read after).")
    uri_root: Path | None = Field(
        default=None, description="Frames that carry a file URI instead of image bytes are "
        "read only from regular files under this directory; unset: such frames are refused "
        "(unreadable_uri). Whoever writes to the frames topic must not make the worker read "
        "/dev/zero, a FIFO or /proc/self/environ.")


class ApiSettings(BaseModel):
    """The operator's HTTP API and web page (``driftline api``; issue #15)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: SecretStr | None = Field(
        default=None, description="Bearer token every /api request must carry (`Authorization: "
        "Bearer ...`). Unset: the API listens on loopback only and warns once at start-up.")
    host: str = Field(default="127.0.0.1", description="Address to listen on; anything but "
                      "loopback needs `token`.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port (0: a free one).")
    series_points: int = Field(
        default=300, ge=0, le=10_000, description="Points kept per signal for the charts (the "
        "sinks append one per state snapshot; ~90 bytes each in Redis). 0: no series.")
    frames_dir: Path | None = Field(
        default=None, description="Directory of stored frames, `<stream_id>/<frame_id>.jpg` "
        "(or .png, .webp): the page shows an alert's example frames from it. Unset: the "
        "page lists their ids only.")
    stale_after_s: float | None = Field(
        default=None, ge=0, le=90 * 86_400, description="A stream (camera x model "
        "version) whose signals were not updated for this many seconds, by the API's wall "
        "clock, is stale: /api/v1/drift leaves it out of its groups and denominators (and "
        "counts it), since nothing deletes a retired model version's streams from Redis. A "
        "stream with input snapshots every STATE_INTERVAL_S at most, and one without input "
        "alerts camera.silent after SILENT_AFTER_S: it must exceed both. 0: off. Unset: "
        "1 h (`Settings.stale_after_s`), or twice SILENT_AFTER_S when that is longer.")


Lifecycle = Literal["firing", "acknowledged", "resolved"]
LIFECYCLES: tuple[Lifecycle, ...] = ("firing", "acknowledged", "resolved")


class WebhookEndpoint(BaseModel):
    """One receiver of alert webhooks (``DRIFTLINE_WEBHOOKS``, a JSON list of these).

    Filters (all must match; globs as in ``fnmatch``): ``streams`` and
    ``signals`` (None: every signal), ``severities`` (None: every severity),
    ``lifecycle`` (the alert's states sent). ``format``: ``standard`` (the
    alert's JSON) or ``slack`` (``{"text": ...}``, for Slack-compatible
    incoming webhooks); both signed (Standard Webhooks headers).

    >>> WebhookEndpoint(name="ops", url="https://example.org/h", secret="s",
    ...                 streams=["dock-*"], format="slack").lifecycle
    ['firing', 'acknowledged', 'resolved']
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    url: str
    secret: SecretStr
    streams: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    signals: list[str] | None = Field(default=None, min_length=1)
    severities: list[Literal["info", "warning", "critical"]] | None = Field(default=None,
                                                                         min_length=1)
    lifecycle: list[Lifecycle] = Field(default_factory=lambda: list(LIFECYCLES),
                                       min_length=1)
    format: Literal["standard", "slack"] = "standard"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return v

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value():
            raise ValueError("empty secret")
        return v


def default_calibration_workers() -> int:
    """``DRIFTLINE_CALIBRATION_WORKERS``'s default: ``min(4, cores - 1)``, at least 1.

    >>> 1 <= default_calibration_workers() <= 4
    True
    """
    return max(1, min(4, (os.cpu_count() or 1) - 1))


class Settings(BaseSettings):
    """Everything driftline reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    bootstrap_servers: str = "127.0.0.1:19092"
    redis_url: str = "redis://127.0.0.1:16379/0"
    topic_prefix: str = Field(default="driftline", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    partitions: int = Field(default=4, ge=1, le=1024)
    consumer_group: str = "driftline"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_max_attempts: int = Field(default=6, ge=1, le=50)
    # Several receivers, each with its own secret and filters (issue #15); the
    # single-endpoint WEBHOOK_URL/WEBHOOK_SECRET form is one more, named "default".
    webhooks: list[WebhookEndpoint] = Field(default_factory=list)
    max_event_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    silent_after_s: float = Field(
        default=60.0, ge=0, description="A stream without input for this many seconds of the "
        "worker's wall clock raises one `camera.silent` alert (0 = off; replay never does).")
    # -- worker state (processors.stream_app: snapshots, restore) --
    state_every: int = Field(default=100, ge=1, description="Snapshot a stream every N of its "
                             "events (or STATE_INTERVAL_S after its first unsnapshotted one). "
                             "Its input offsets are committed only up to its last snapshot.")
    state_interval_s: float = Field(default=5.0, gt=0, le=3600, description="Longest time a "
                                    "stream's applied events wait for a snapshot (and their "
                                    "offsets for a commit); a rebalance waits up to this long.")
    max_live_monitors: int | None = Field(default=None, ge=1, description="Live stream "
                                          "monitors per worker; beyond it the least recently "
                                          "seen are snapshotted and kept packed (~10x smaller) "
                                          "until their stream's next event. Unset: no cap.")
    shutdown_grace_s: float = Field(default=60.0, gt=0, le=3600, description="Longest time "
                                    "a worker may take to stop after SIGTERM/SIGINT (or a "
                                    "crash); then what still runs is logged and it exits with "
                                    "status 70. Its offsets are committed only behind its "
                                    "snapshots, so a restart resumes as after a kill.")
    calibration_workers: int = Field(
        default_factory=lambda: default_calibration_workers(), ge=0, le=64,
        description="Child processes that calibrate detector thresholds (Monte-Carlo, "
        "0.05-0.35 s per signal when a stream's reference fills) off the worker's event loop; "
        "each result is installed before its stream's next event, so alerts and ids are "
        "those of replay. 0 = inline on the event loop (100 streams warming up together "
        "stalled it for up to 17 s). Default: min(4, cores - 1), at least 1.")
    redis_history: int = Field(default=1_000, ge=1, description="Alerts kept per stream.")
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    data_dir: Path = Path(".driftline")
    monitor: MonitorSettings = MonitorSettings()
    embedder: EmbedderSettings = EmbedderSettings()
    api: ApiSettings = ApiSettings()

    # --- security (issue #12): control-topic authentication, Kafka client security -----
    control_secret: SecretStr | None = Field(
        default=None, description="HMAC key for operator commands: the CLI signs them, the "
        "worker refuses unsigned, badly signed or stale ones (dead-lettered). Unset: control "
        "is unauthenticated (a warning at start-up). At least 16 characters; `whsec_<base64>` "
        "is accepted as for webhooks.")
    control_max_age_s: float = Field(
        default=900.0, gt=0, description="A signed command older (or further in the future) "
        "than this is refused as stale. Keep it above how long a worker may be down.")
    kafka_options: dict[str, str] = Field(
        default={}, description="librdkafka properties for every Kafka client, as "
        'JSON: {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", '
        '"sasl.username": "driftline", "ssl.ca.location": "/etc/ssl/ca.pem"}. Passwords are '
        "refused here: give them as kafka_sasl_password / kafka_ssl_key_password.")
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_key_password: SecretStr | None = None
    webhook_concurrency: int = Field(
        default=8, ge=1, le=256, description="Alerts the webhook sink delivers at once: one "
        "that the receiver holds or refuses (retried with backoff) does not delay the others. "
        "Offsets are committed in order, after each alert's delivery or dead letter.")
    # --- end of security block ----------------------------------------------------------

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, v: str) -> str:
        if not v.strip() or any(":" not in s for s in v.split(",")):
            raise ValueError("expected host:port[,host:port...]")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return v

    @field_validator("kafka_options")
    @classmethod
    def _kafka_options(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not KAFKA_OPTION.match(name):
                raise ValueError(f"{name[:60]!r} is not a librdkafka property name")
            if name in KAFKA_OPTIONS_OWNED:
                raise ValueError(f"{name!r} is set by driftline ({KAFKA_OPTIONS_OWNED[name]})")
            if any(word in name for word in ("password", "secret")):
                raise ValueError(
                    f"{name!r} carries a secret: use DRIFTLINE_KAFKA_SASL_PASSWORD or "
                    "DRIFTLINE_KAFKA_SSL_KEY_PASSWORD (kept out of logs)")
        return v

    @field_validator("control_secret")
    @classmethod
    def _control_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("at least 16 characters")
        return v

    def kafka_client_options(self) -> dict[str, str]:
        """``kafka_options`` plus the secrets, for a confluent-kafka client's config.

        >>> Settings(kafka_options={"security.protocol": "SASL_SSL"},
        ...          kafka_sasl_password="pw").kafka_client_options()
        {'security.protocol': 'SASL_SSL', 'sasl.password': 'pw'}
        """
        out = dict(self.kafka_options)
        if self.kafka_sasl_password is not None:
            out["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_key_password is not None:
            out["ssl.key.password"] = self.kafka_ssl_key_password.get_secret_value()
        return out

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return v

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _config_error(exc) from None
        except SettingsError as exc:  # a JSON setting that is not JSON (never echoed)
            field = re.search(r'field "(\w+)"', str(exc))
            raise ConfigError(ENV_PREFIX + (field.group(1).upper() if field else ""),
                              "not valid JSON") from None
        names = [w.name for w in self.webhooks]
        if len(set(names)) != len(names) or (self.webhook_url and "default" in names):
            raise ConfigError(f"{ENV_PREFIX}WEBHOOKS",
                              "endpoint names must be unique (\"default\" is WEBHOOK_URL's)")
        if self.webhook_url and self.webhook_secret is None:
            raise ConfigError(
                f"{ENV_PREFIX}WEBHOOK_SECRET", "required when DRIFTLINE_WEBHOOK_URL is set"
            )
        # A window within a snapshot interval would call live streams retired, one within
        # the silence timeout would hide a camera before it is reported silent. Only a value
        # set is checked: the default follows SILENT_AFTER_S (a worker never fails on it).
        stale = self.api.stale_after_s
        if stale and stale <= max(self.state_interval_s, self.silent_after_s):
            raise ConfigError(
                f"{ENV_PREFIX}API__STALE_AFTER_S",
                f"{stale:g} s must exceed DRIFTLINE_STATE_INTERVAL_S ({self.state_interval_s:g}) "
                f"and DRIFTLINE_SILENT_AFTER_S ({self.silent_after_s:g}), or be 0 (off)")

    @property
    def output_max_bytes(self) -> int:
        """Largest event driftline itself produces (a state snapshot can exceed an input's limit).

        The worker's producer accepts this much, and readers of its own outputs
        (the state topic) accept it too: a snapshot is not bad input.
        """
        return max(self.max_event_bytes, 1 << 20) + 65536

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix)

    @property
    def stale_after_s(self) -> float:
        """The API's staleness window: ``api.stale_after_s``, or when unset ``STALE_AFTER_S``
        (1 h), or twice ``silent_after_s`` when that is longer (cameras that are quiet
        for hours by design, e.g. motion-triggered, are still reported silent first).

        An hour is 720 snapshot intervals (``state_interval_s``, 5 s) and 60 silence
        timeouts (``silent_after_s``, 60 s): a stream still fed is never near it, a
        camera that stopped was reported silent (or offline) long before, and a model
        version rolled out of a camera leaves the page within the hour.

        >>> Settings().stale_after_s, Settings(silent_after_s=7200).stale_after_s
        (3600.0, 14400.0)
        >>> Settings(api=ApiSettings(stale_after_s=0)).stale_after_s
        0.0
        >>> Settings(api=ApiSettings(stale_after_s=30))
        Traceback (most recent call last):
        ...
        driftline.errors.ConfigError: DRIFTLINE_API__STALE_AFTER_S: 30 s must exceed ...
        """
        if self.api.stale_after_s is not None:
            return self.api.stale_after_s
        return max(STALE_AFTER_S, 2 * self.silent_after_s)


def _config_error(exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"]]
    setting = ENV_PREFIX + "__".join(loc).upper() if loc else ENV_PREFIX
    msg = first["msg"]
    if loc[:1] == ["webhooks"]:  # a JSON list: the setting, and where in it
        secret_field = "secret" in loc
        setting, msg = f"{ENV_PREFIX}WEBHOOKS", f"[{']['.join(loc[1:])}]: {msg}"
        if secret_field:
            return ConfigError(setting, f"{msg} (got <redacted>)")
    if first["type"] == "extra_forbidden":
        msg = "unknown setting (misspelt?)"
    # The value is echoed only redacted: a Redis URL or a webhook URL can carry a
    # password or token, and a secret must never reach a terminal or a log.
    secret = any(w in setting.lower() for w in ("secret", "password", "token"))
    value = first.get("input")
    if isinstance(value, dict):  # e.g. kafka_options: the names, never the values
        value = {k: "..." for k in value}
    if secret:
        got = "<redacted>"
    elif isinstance(value, str) and (setting.endswith("_URL") or loc[-1:] == ["url"]):
        got = repr(redact_url(value))  # a webhook URL's path or query may be its token
    else:
        got = redact(repr(value))[:200]
    return ConfigError(setting, f"{msg} (got {got})")


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; unknown ``DRIFTLINE_*`` names fail.

    pydantic-settings ignores environment variables it does not know, so a
    typo such as ``DRIFTLINE_BOOTSTRAP_SERVER`` would silently fall back to the
    default broker. Check the names ourselves first.
    """
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    for name in os.environ:
        if not name.startswith(ENV_PREFIX):
            continue
        head = name.split("__", 1)[0]
        if head not in known:
            raise ConfigError(name, "unknown setting (misspelt?)")
    settings = Settings(**overrides)
    protect_secrets(settings)
    return settings


def protect_secrets(settings: Settings) -> None:
    """Register every secret of ``settings`` with ``redact`` and redact this process's logs.

    The webhook URL is registered whole (its path or query may be the token),
    the Redis URL's password, and every ``SecretStr``.
    """
    from urllib.parse import urlsplit

    from driftline.errors import install_log_redaction, register_secret

    for value in (settings.webhook_secret, settings.control_secret, settings.api.token,
                  settings.kafka_sasl_password, settings.kafka_ssl_key_password):
        if value is not None:
            register_secret(value.get_secret_value())
    if settings.webhook_url:
        register_secret(settings.webhook_url)
    for endpoint in settings.webhooks:
        register_secret(endpoint.secret.get_secret_value())
        register_secret(endpoint.url)
    with contextlib.suppress(ValueError):
        register_secret(urlsplit(settings.redis_url).password)
    install_log_redaction()

"""The FastAPI application: the fleet, streams, signals, alerts, controls, and the page.

Routes (every ``/api/v1`` route needs ``Authorization: Bearer <DRIFTLINE_API__TOKEN>``
when the token is set; ``/``, ``/static``, ``/healthz``, ``/metrics`` and
``/openapi.json`` do not):

=========================================================  =====================================
``GET  /api/v1/streams``                                   the fleet: status, last update,
                                                           signals in drift, last alert
``GET  /api/v1/drift``                                     signals in drift now, grouped by
                                                           model version and signal: one
                                                           camera's, or the model's (stale
                                                           streams left out, counted)
``GET  /api/v1/streams/{stream_id}``                       one stream's signals with their
                                                           series and change points
``GET  /api/v1/streams/{stream_id}/signals/{signal}``      one signal's state and history
``GET  /api/v1/alerts``                                    the alert timeline, newest first
``GET  /api/v1/alerts/{alert_id}``                         one alert and its example frames
``GET  /api/v1/frames/{stream_id}/{frame_id}``             a stored example frame
``POST /api/v1/streams/{stream_id}/{action}``              a control: rereference, ack, snooze,
                                                           unsnooze, disable, enable, set-budget
``GET  /healthz``, ``GET /metrics``                        liveness (Redis ping), Prometheus
=========================================================  =====================================
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' annotations
# at run time, and some name closure variables (the bearer scheme, the request body).
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from driftline.api.controls import ACTIONS, ControlPublisher
from driftline.api.models import (
    AckRequest,
    AlertDetail,
    BudgetRequest,
    ControlAccepted,
    ControlRequest,
    DriftOverview,
    Fleet,
    SignalHistory,
    SnoozeRequest,
    StreamSignals,
    Timeline,
)
from driftline.api.views import Views
from driftline.errors import DriftlineError, PermanentError, TransientError
from driftline.metrics import API_CONTROLS, API_REQUESTS
from driftline.settings import Settings
from processors.monitor import RETRAIN_SIGNAL, StreamMonitor

log = logging.getLogger("driftline.api")

STATIC = Path(str(resources.files("driftline.api") / "static"))
TITLE = "driftline"
VERSION = "1"


def create_app(settings: Settings) -> FastAPI:
    """The API and page for one deployment (``settings``: its Redis, broker, token)."""
    views = Views(settings)
    controls = ControlPublisher(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        controls.close()  # flush the control producer on shutdown

    app = FastAPI(
        title=TITLE, version=VERSION, lifespan=lifespan,
        # The interactive docs pages load their scripts from a CDN: not served.
        docs_url=None, redoc_url=None,
        description="The operator's surface of driftline: the fleet of cameras, each "
        "stream's signals and alerts, and the controls (published as signed commands on "
        "the control topic).",
    )
    app.state.controls = controls
    bearer = HTTPBearer(auto_error=False, description="DRIFTLINE_API__TOKEN")
    token = settings.api.token.get_secret_value().encode() if settings.api.token else None

    def auth(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if token is None:
            return
        if cred is None or not hmac.compare_digest(cred.credentials.encode(), token):
            raise HTTPException(401, "missing or wrong bearer token (DRIFTLINE_API__TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        route = request.scope.get("route")
        API_REQUESTS.labels(getattr(route, "path", "other"), request.method,
                            str(response.status_code)).inc()
        return response

    @app.exception_handler(TransientError)
    async def transient(_: Request, exc: TransientError) -> JSONResponse:
        return JSONResponse({"detail": f"temporarily unavailable: {exc}"}, status_code=503)

    @app.exception_handler(PermanentError)
    async def permanent(_: Request, exc: PermanentError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(DriftlineError)
    async def other(_: Request, exc: DriftlineError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    api = [Depends(auth)]

    @app.get("/api/v1/streams", response_model=Fleet, dependencies=api, tags=["fleet"])
    def fleet(offset: Annotated[int, Query(ge=0)] = 0,
              limit: Annotated[int, Query(ge=1, le=500)] = 100) -> Fleet:
        """Every stream (camera x its model versions): status, last update, drift, last alert."""
        return views.fleet(offset, limit)

    @app.get("/api/v1/drift", response_model=DriftOverview, dependencies=api, tags=["fleet"])
    def drift() -> DriftOverview:
        """Is it this camera, or the model? Every signal in drift now, grouped by model version
        and signal (a camera's health signals by signal alone), each with its streams in
        drift, the model version's stream count and a scope: model, fleet or streams.
        Streams (camera x model version) not updated for DRIFTLINE_API__STALE_AFTER_S
        (1 h) are left out of groups and counts (a retired model version's stay in Redis),
        and counted per model version in `stale`."""
        return views.drift()

    @app.get("/api/v1/streams/{stream_id}", response_model=StreamSignals, dependencies=api,
             tags=["fleet"])
    def stream(stream_id: str, model_version: str | None = None,
               points: Annotated[int | None, Query(ge=1, le=10_000)] = None) -> StreamSignals:
        """One stream's signals, each with its recent series and its alerts' change points."""
        out = views.signals(stream_id, model_version=model_version, points=points)
        if not out.known:
            raise HTTPException(404, f"no stream {stream_id!r}")
        return out

    @app.get("/api/v1/streams/{stream_id}/signals/{signal}", response_model=SignalHistory,
             dependencies=api, tags=["fleet"])
    def signal_history(stream_id: str, signal: str, model_version: str | None = None,
                       points: Annotated[int | None, Query(ge=1, le=10_000)] = None
                       ) -> SignalHistory:
        """One signal: its current state, its series (newest last) and its change points."""
        found = views.signals(stream_id, signal=signal, model_version=model_version,
                              points=points).signals
        if not found:
            raise HTTPException(404, f"no signal {signal!r} of stream {stream_id!r}")
        return found[-1]

    @app.get("/api/v1/alerts", response_model=Timeline, dependencies=api, tags=["alerts"])
    def alerts(stream_id: str | None = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Timeline:
        """The alert timeline, newest first (one stream, or the whole fleet)."""
        return views.timeline(stream_id=stream_id, limit=limit)

    @app.get("/api/v1/alerts/{alert_id}", response_model=AlertDetail, dependencies=api,
             tags=["alerts"])
    def alert(alert_id: str) -> AlertDetail:
        """One alert, with its example frames before and after the change when stored."""
        found = views.alert(alert_id)
        if found is None:
            raise HTTPException(404, f"no alert {alert_id!r} (unknown, or expired from Redis)")
        return found

    @app.get("/api/v1/frames/{stream_id}/{frame_id}", dependencies=api, tags=["alerts"],
             response_class=FileResponse)
    def frame(stream_id: str, frame_id: str) -> FileResponse:
        """A stored frame (``DRIFTLINE_API__FRAMES_DIR/<stream_id>/<frame_id>.jpg``)."""
        path = views.frame_path(stream_id, frame_id)
        if path is None:
            raise HTTPException(404, f"frame {frame_id!r} is not stored")
        return FileResponse(path)

    def control(action: str, body: type[ControlRequest]) -> None:
        path = action.replace("_", "-")

        def post(stream_id: str, req: ControlRequest) -> ControlAccepted:
            _check_signals(action, req.signals)
            try:
                out = controls.send(stream_id, action, req)
            except ValidationError as exc:
                raise HTTPException(422, exc.errors(include_url=False, include_context=False)
                                    ) from None
            API_CONTROLS.labels(action).inc()
            log.info("control %s on %s by %s: command %s", action, stream_id, req.by,
                     out.command_id)
            return out

        post.__annotations__["req"] = body
        post.__name__ = f"post_{action}"
        post.__doc__ = CONTROL_DOCS[action]
        app.post(f"/api/v1/streams/{{stream_id}}/{path}", response_model=ControlAccepted,
                 status_code=202, dependencies=api, tags=["controls"])(post)

    bodies: dict[str, type[ControlRequest]] = {
        "ack": AckRequest, "snooze": SnoozeRequest, "set_budget": BudgetRequest}
    for action in ACTIONS:
        control(action, bodies.get(action, ControlRequest))

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Liveness: this process answers and reaches Redis (503 otherwise)."""
        from sinks.redis_state import list_streams

        list_streams(settings.redis_url, namespace=settings.topic_prefix)
        return {"status": "ok"}

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics of this process."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


CONTROL_DOCS = {
    "rereference": "Re-reference the signals: they rebuild their reference from the next "
                   "REFERENCE_SIZE events.",
    "ack": "Acknowledge the signals' alert (the change is the new normal): recorded in Redis, "
           "and the signals re-reference.",
    "snooze": "Snooze the signals until `until` (or for `for_s` seconds): they keep updating "
              "but do not notify.",
    "unsnooze": "End a snooze.",
    "disable": "Stop monitoring the signals.",
    "enable": "Monitor disabled signals again (they re-reference).",
    "set_budget": "Set the stream's false-alarm budget (false alarms per week, all signals).",
}


def _check_signals(action: str, signals: list[str] | None) -> None:
    known = list(StreamMonitor.known_signals())
    if action != "rereference":
        known.append(RETRAIN_SIGNAL)
    unknown = [s for s in signals or [] if s not in known]
    if unknown:
        raise HTTPException(422, f"unknown signal(s) {', '.join(unknown)}; known signals: "
                            f"{', '.join(known)}")

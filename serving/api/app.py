"""The serving API: one versioned HTTP API over the merged batch and speed views (OpenAPI at ``/openapi.json``,
interactive docs at ``/docs``).

Every answer carries ``freshness`` (which layers answered, the batch watermark W as ``as_of``, the speed lag).
Errors are JSON ``{"error": {"status", "code", "message"}}``: 401 without a valid ``X-API-Key``, 403 when the
key lacks the scope, 404 for an id neither layer knows, 422 naming the bad parameters, 429 over the key's rate
(with ``Retry-After``), 503 with ``Retry-After`` while Redis cannot be reached; never a stack trace.
"""


import gc
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

import orjson
import redis
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive, Scope, Send

from serving.api import models
from serving.api.auth import ApiKey, KeyCache, RateLimiter, key_record
from serving.api.redis_rounds import client_for
from serving.dashboard import CHART_JS_VERSION, PAGE, chart_js_path
from serving.metrics import RequestTimer, exposition, request_histogram
from serving.views.merge import Freshness
from serving.views.pipeline import recent_runs
from serving.views.service import Answer, ModelMissing, NotFound, Views
from warehouse_models.batch_versions import BatchVersionMissing
from warehouse_models.events import COUNTRY_PATTERN
from warehouse_models.metrics.engagement import DAILY_DAYS
from warehouse_models.redis_io import utc_from_ms
from warehouse_models.redis_plan import Plan, arun, run
from warehouse_models.settings import Settings, load_settings

logger = logging.getLogger(__name__)

API_VERSION = "v1"
RETRY_AFTER_S = 2
"""Seconds a client is asked to wait after a 503 (Redis unreachable)."""
REDIS_TIMEOUT_S = 1.0
"""Socket timeout of the API's Redis client: a request fails fast (503) rather than hang on a dead Redis."""

ID_PATTERN = r"^[^\u0000-\u0020\u007f-\u00a0*?\[\]\\/]+$"
"""Ids as the events carry them, minus what would break a key or a path: control and space characters, glob
characters, slashes (the same pattern in Python and in the OpenAPI document's ECMA dialect)."""
ID_MAX_LENGTH = 128
Id = Annotated[str, Path(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN,
                         description="An id as the events carry it (no spaces, slashes or glob characters).")]
QueryId = Annotated[str, Query(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
_ID = ID_PATTERN.removeprefix("^").removesuffix("+$") + f"{{1,{ID_MAX_LENGTH}}}"
"""One id in a hot route's path regular expression: ID_PATTERN's characters, at most ID_MAX_LENGTH of them."""

WINDOW_MINUTES_DEFAULT, WINDOW_MINUTES_MAX = 5, 180
"""Minutes of 5-second engagement windows a request gets unless it asks, and the most it may ask for."""
DAYS_DEFAULT = 7
"""UTC dates of daily engagement totals a request gets unless it asks."""
TRENDING_KIND_DEFAULT: Literal["vod", "live"] = "vod"
"""The content kind a trending request gets unless it asks."""
TRENDING_LIMIT_DEFAULT, TRENDING_LIMIT_MAX = 10, 100
"""Trending titles a request gets unless it asks, and the most it may ask for."""

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                                description="An API key (`reelytics api keys create`).")

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": models.ErrorBody} for status in (401, 403, 404, 422, 429, 503)}


def _error(status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None,
           parameters: list[str] | None = None) -> JSONResponse:
    body = models.ErrorBody(error=models.Error(status=status, code=code, message=message, parameters=parameters))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


class ApiError(HTTPException):
    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code


def _freshness(value: Freshness) -> dict[str, Any]:
    return {"layers": list(value.layers), "as_of": value.watermark, "batch_version": value.batch_version,
            "speed_lag_seconds": value.speed_lag_seconds, "speed_kafka_lag": value.speed_kafka_lag,
            "complete": value.complete}


def _json(payload: Any) -> Response:
    """The answer as JSON (:func:`_json_body`) in a response."""
    return Response(_json_body(payload), media_type="application/json")


def _json_body(payload: Any) -> bytes:
    """The answer as JSON, encoded by orjson. The routes declare their pydantic models for the OpenAPI document,
    but return the encoded body themselves: FastAPI then skips re-validating every answer against its model,
    which cost more than the Redis reads of a request (the schemathesis test checks answers against the
    document instead)."""
    return orjson.dumps(payload)


def _answer_body(answer: Answer) -> bytes:
    return _json_body({**answer.data, "freshness": _freshness(answer.freshness)})


def _answer(answer: Answer) -> Response:
    return Response(_answer_body(answer), media_type="application/json")


class _PipelineCollector(Collector):
    """Freshness gauges read from Redis at scrape time: the speed layer's lag and the batch watermark's age."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Any:
        views: Views | None = getattr(self.app.state, "views", None)
        client: redis.Redis | None = getattr(self.app.state, "sync_redis", None)
        if views is None or client is None:
            return
        try:
            answer = run(client, views.freshness())
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, BatchVersionMissing):
            return
        lag = GaugeMetricFamily("reelytics_speed_lag_seconds", "Seconds since the speed layer's shared query "
                                "finished its newest micro-batch (as the API reads it from Redis).")
        if answer.freshness.speed_lag_seconds is not None:
            lag.add_metric([], answer.freshness.speed_lag_seconds)
        yield lag
        age = GaugeMetricFamily("reelytics_batch_watermark_age_seconds",
                                "Seconds between now and the batch watermark W of the current batch views.")
        if answer.freshness.watermark is not None:
            age.add_metric([], time.time() - answer.freshness.watermark.timestamp())
        yield age


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API app over ``settings``' Redis: every route reads with an asyncio client on the event loop."""
    settings = settings or load_settings()
    keys = settings.keys
    key_cache = KeyCache()
    limiter = RateLimiter(settings.serving_rate_per_second)
    registry = CollectorRegistry()
    redis_errors = Counter("reelytics_api_redis_errors", "Requests answered 503 because Redis could not be "
                           "reached.", registry=registry)
    authorize_answers = Counter("reelytics_api_authorize", "Authorize answers by outcome and reason.",
                        ["allowed", "reason"], registry=registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        password = settings.redis_password.get_secret_value() if settings.redis_password is not None else None
        app.state.redis = client_for(settings.redis_url, password=password, timeout=REDIS_TIMEOUT_S)
        # for the metrics collector, which runs in a thread
        app.state.sync_redis = settings.model_copy(update={"redis_timeout_seconds": REDIS_TIMEOUT_S}).redis_client()
        app.state.views = Views(settings)
        try:
            yield
        finally:
            await app.state.redis.aclose()
            app.state.sync_redis.close()

    # FastAPI's own OpenTelemetry bridge is off: the API's metrics are Prometheus' (/metrics), and its per-request
    # check whether a tracer is configured costs on every request.
    app = ServingApp(title="Reelytics serving API", version=API_VERSION, lifespan=lifespan,
                  description=__doc__ or "", responses=_ERROR_RESPONSES,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    registry.register(_PipelineCollector(app))
    page = PAGE.read_bytes()

    async def views(request: Request) -> Views:
        found: Views = request.app.state.views
        return found

    async def answer(request: Request, plan: Plan[Answer]) -> Response:
        return _answer(await arun(request.app.state.redis, plan))

    async def authenticate(client: Any, key: str | None, scope: str) -> ApiKey:
        """The key's record when it may use ``scope`` now (one token of its rate taken), else :class:`ApiError`
        (401, 403 or 429). Only a key this process has not seen for KEY_CACHE_SECONDS goes to Redis."""
        if not key:
            raise ApiError(401, "unauthorized", "send an API key in the X-API-Key header "
                                                "(`reelytics api keys create --name NAME --scope read`)")
        hit, found = key_cache.cached(key)
        if not hit:
            found = await arun(client, key_record(keys, key))
            key_cache.remember(key, found)
        return judge(found, scope)

    def authenticate_cached(key: str, scope: str) -> ApiKey | None:
        """:func:`authenticate` without I/O: the key's record when this process knows the key and it may use
        ``scope`` now, None when its record must be read from Redis first; :class:`ApiError` as there."""
        hit, found = key_cache.cached(key)
        return judge(found, scope) if hit else None

    def judge(found: ApiKey | None, scope: str) -> ApiKey:
        if found is None:
            raise ApiError(401, "unauthorized", "unknown or revoked API key")
        if not found.allows(scope):
            raise ApiError(403, "forbidden", f"this key ({found.name}) lacks the {scope!r} scope; it has "
                                             f"{', '.join(sorted(found.scopes))}")
        wait = limiter.take(found.name, found.rate_per_second)
        if wait > 0:
            raise ApiError(429, "rate_limited", f"key {found.name} is over its rate "
                                                f"({found.rate_per_second or limiter.default_rate:g}/s)",
                           headers={"Retry-After": str(max(1, math.ceil(wait)))})
        return found

    def require(scope: str) -> Callable[..., Awaitable[ApiKey]]:
        # Async, like every dependency here: FastAPI runs a sync dependency in its thread pool, a thread hop per
        # dependency per request.
        async def check(key: Annotated[str | None, Depends(_api_key_header)], request: Request) -> ApiKey:
            return await authenticate(request.app.state.redis, key, scope)
        return check

    read, playback, admin = Depends(require("read")), Depends(require("playback")), Depends(require("admin"))
    ViewsDep = Annotated[Views, Depends(views)]

    # --- errors ------------------------------------------------------------------------------------------
    def known_error(request_line: str, exc: Exception) -> JSONResponse | None:
        """The JSON answer to an error the API expects (None for any other: a 500), for the exception handlers
        and the hot routes alike; ``request_line``: method and path, for the log."""
        if isinstance(exc, ApiError):
            return _error(exc.status_code, exc.code, str(exc.detail), headers=exc.headers)
        if isinstance(exc, StarletteHTTPException):
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
            return _error(exc.status_code, code, str(exc.detail), headers=exc.headers)
        if isinstance(exc, NotFound):
            return _error(404, "not_found", str(exc))
        if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            redis_errors.inc()
            logger.warning("Redis unreachable during %s: %s", request_line, exc)
            host, port = settings.redis_host_port
            return _error(503, "unavailable", f"the views' store (Redis at {host}:{port}) is unreachable; retry "
                                              "shortly", headers={"Retry-After": str(RETRY_AFTER_S)})
        if isinstance(exc, BatchVersionMissing):
            logger.error("%s", exc)
            return _error(503, "unavailable", "the batch views are being republished; retry shortly",
                          headers={"Retry-After": str(RETRY_AFTER_S)})
        if isinstance(exc, ModelMissing):
            logger.error("%s", exc)
            return _error(503, "unavailable", "the recommendation model is being republished; retry shortly",
                          headers={"Retry-After": str(RETRY_AFTER_S)})
        return None

    def error_answer(request_line: str, exc: Exception) -> JSONResponse:
        found = known_error(request_line, exc)
        if found is not None:
            return found
        logger.exception("unexpected error in %s", request_line, exc_info=exc)
        return _error(500, "internal", "unexpected error; it is logged on the server")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems, names = [], []
        for error in exc.errors():
            where = [str(part) for part in error.get("loc", ())]
            name = ".".join(where[1:]) or where[0] if where else "request"
            names.append(name)
            problems.append(f"{where[0] if where else 'request'} parameter {name!r}: {error.get('msg', 'invalid')}")
        return _error(422, "invalid_parameter", "; ".join(problems), parameters=sorted(set(names)))

    @app.exception_handler(ApiError)
    @app.exception_handler(StarletteHTTPException)
    @app.exception_handler(NotFound)
    @app.exception_handler(redis.exceptions.ConnectionError)
    @app.exception_handler(redis.exceptions.TimeoutError)
    @app.exception_handler(BatchVersionMissing)
    @app.exception_handler(ModelMissing)
    @app.exception_handler(Exception)
    async def _failed(request: Request, exc: Exception) -> JSONResponse:
        return error_answer(f"{request.method} {request.url.path}", exc)

    # --- routes ------------------------------------------------------------------------------------------
    @app.get("/healthz", tags=["health"], summary="Liveness and Redis reachability (no key needed)")
    async def healthz(request: Request) -> dict[str, str]:
        await request.app.state.redis.ping()
        return {"status": "ok"}

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics (no key needed; bind to a trusted network)",
             response_class=Response)
    def metrics() -> Response:
        body, content_type = exposition(registry)
        return Response(body, media_type=content_type)

    @app.get("/dashboard", tags=["dashboard"], response_class=Response,
             summary="The live dashboard (the page asks for an admin key; its data comes from /v1/dashboard)")
    async def dashboard_page() -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    @app.get("/dashboard/chart.umd.js", tags=["dashboard"], response_class=Response, include_in_schema=False)
    def chart_js() -> Response:
        path = chart_js_path(settings)
        if not path.is_file():
            raise ApiError(503, "unavailable", f"Chart.js {CHART_JS_VERSION} is not installed: run "
                                               "`bash infra/install.sh`")
        return Response(path.read_bytes(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    v1 = f"/{API_VERSION}"

    @app.get(f"{v1}/freshness", response_model=models.FreshnessAnswer, tags=["pipeline"], dependencies=[read],
             summary="The batch watermark W and the speed layer's lag")
    async def freshness(request: Request, v: ViewsDep) -> Response:
        return await answer(request, v.freshness())

    @app.get(f"{v1}/users/{{user_id}}/engagement", response_model=models.Engagement, tags=["users"],
             dependencies=[read], summary="A user's watch time, events and clicks: all-time totals, daily totals "
                                          "and the 5-second windows of the last minutes")
    async def engagement(request: Request, v: ViewsDep, user_id: Id,
                         window_minutes: Annotated[int, Query(ge=1, le=WINDOW_MINUTES_MAX)] = WINDOW_MINUTES_DEFAULT,
                         days: Annotated[int, Query(ge=1, le=DAILY_DAYS)] = DAYS_DEFAULT) -> Response:
        """``days``: how many UTC dates of daily totals, today included."""
        return await answer(request, v.engagement(user_id, window_minutes=window_minutes, days=days))

    @app.get(f"{v1}/users/{{user_id}}/resume", response_model=models.Resume, tags=["users"], dependencies=[read],
             summary="Where the user stopped in each title, newest first")
    async def resume_all(request: Request, v: ViewsDep, user_id: Id) -> Response:
        return await answer(request, v.resume(user_id, None))

    @app.get(f"{v1}/users/{{user_id}}/resume/{{content_id}}", response_model=models.Resume, tags=["users"],
             dependencies=[read], summary="Where the user stopped in one title")
    async def resume_one(request: Request, v: ViewsDep, user_id: Id, content_id: Id) -> Response:
        return await answer(request, v.resume(user_id, content_id))

    @app.get(f"{v1}/users/{{user_id}}/recent", response_model=models.Recent, tags=["users"], dependencies=[read],
             summary="The titles the user watched most recently")
    async def recent(request: Request, v: ViewsDep, user_id: Id,
                     limit: Annotated[int, Query(ge=1, le=50)] = 10) -> Response:
        return await answer(request, v.recent(user_id, limit=limit))

    @app.get(f"{v1}/trending", response_model=models.Trending, tags=["content"], dependencies=[read],
             summary="Titles with the most distinct viewers now, over every country or in one, with the day's "
                     "baseline")
    async def trending(request: Request, v: ViewsDep, kind: Literal["vod", "live"] = TRENDING_KIND_DEFAULT,
                       limit: Annotated[int, Query(ge=1, le=TRENDING_LIMIT_MAX)] = TRENDING_LIMIT_DEFAULT,
                       country: Annotated[str | None, Query(pattern=COUNTRY_PATTERN)] = None) -> Response:
        """``country`` (ISO 3166-1 alpha-2): the viewers whose events came from it (no baseline: the day's baselines
        are over every country)."""
        return await answer(request, v.trending(kind, limit=limit, country=country))

    @app.get(f"{v1}/content/{{content_id}}/stats", response_model=models.ContentStats, tags=["content"],
             dependencies=[read], summary="A title's views, watch time and completion (batch, as of W)")
    async def content_stats(request: Request, v: ViewsDep, content_id: Id) -> Response:
        return await answer(request, v.content_stats(content_id))

    @app.get(f"{v1}/ctr/{{rail_id}}/{{button_id}}", response_model=models.Ctr, tags=["content"],
             dependencies=[read], summary="Impressions, clicks and click-through rate of a rail's button")
    async def ctr(request: Request, v: ViewsDep, rail_id: Id, button_id: Id) -> Response:
        return await answer(request, v.ctr(rail_id, button_id))

    @app.get(f"{v1}/qoe/{{content_id}}", response_model=models.Qoe, tags=["content"], dependencies=[read],
             summary="Quality of experience of a title on one device type in one country")
    async def qoe(request: Request, v: ViewsDep, content_id: Id, device_type: QueryId,
                  country: QueryId) -> Response:
        return await answer(request, v.qoe(content_id, device_type=device_type, country=country))

    @app.get(f"{v1}/users/{{user_id}}/recommendations", response_model=models.Recommendations, tags=["users"],
             dependencies=[read], summary="Live recommendations with reasons: the daily model re-ranked with what the "
                                          "user just watched")
    async def recommendations(request: Request, v: ViewsDep, user_id: Id,
                              limit: Annotated[int, Query(ge=1, le=50)] = 10,
                              country: Annotated[str | None, Query(min_length=1, max_length=128,
                                                                   pattern=ID_PATTERN)] = None,
                              device_type: Annotated[str | None, Query(min_length=1, max_length=128,
                                                                       pattern=ID_PATTERN)] = None) -> Response:
        """``country`` and ``device_type`` choose the popularity segment (default: the user's, from the model;
        for a new user, the catalog's)."""
        return await answer(request, v.recommendations(user_id, limit=limit, country=country,
                                                       device_type=device_type))

    @app.get(f"{v1}/users/{{user_id}}/notifications", response_model=models.Notifications, tags=["users"],
             dependencies=[read], summary="New titles that match the user's taste, newest first (capped per day)")
    async def user_notifications(request: Request, v: ViewsDep, user_id: Id,
                                 limit: Annotated[int, Query(ge=1, le=50)] = 20) -> Response:
        return await answer(request, v.notifications(user_id, limit=limit))

    @app.get(f"{v1}/content/{{content_id}}/similar", response_model=models.Similar, tags=["content"],
             dependencies=[read], summary="The titles most like a title (content similarity of the daily model)")
    async def similar(request: Request, v: ViewsDep, content_id: Id,
                      limit: Annotated[int, Query(ge=1, le=50)] = 10) -> Response:
        return await answer(request, v.similar(content_id, limit=limit))

    @app.get(f"{v1}/experiments/recommendations", response_model=models.Experiments, tags=["admin"],
             dependencies=[admin], summary="Recommendation A/B variants: CTR, watch time and completion with 95 % "
                                           "intervals (admin)")
    async def experiments(request: Request, v: ViewsDep) -> Response:
        return await answer(request, v.experiments())

    @app.get(f"{v1}/alerts", response_model=models.Alerts, tags=["admin"], dependencies=[admin],
             summary="Traffic-spike alerts, open and recent (admin)")
    async def alerts(request: Request, v: ViewsDep,
                     limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Response:
        return await answer(request, v.alerts(limit=limit))

    @app.get(f"{v1}/accounts/{{account_id}}/streams", response_model=models.AccountStreams, tags=["admin"],
             dependencies=[admin], summary="An account's concurrent streams as the speed layer sees them (admin)")
    async def account_streams(request: Request, v: ViewsDep, account_id: Id) -> Response:
        return await answer(request, v.account_streams(account_id))

    @app.get(f"{v1}/playback/decisions", response_model=models.Decisions, tags=["admin"], dependencies=[admin],
             summary="Authorize answers per minute, allowed and denied by reason (admin)")
    async def decisions(request: Request, v: ViewsDep,
                        minutes: Annotated[int, Query(ge=1, le=1440)] = 60) -> Response:
        return await answer(request, v.decisions(minutes=minutes))

    @app.get(f"{v1}/dashboard", response_model=models.Dashboard, tags=["admin"], dependencies=[admin],
             summary="Everything the live dashboard draws, in one answer (admin)")
    async def dashboard(request: Request, v: ViewsDep) -> Response:
        runs = await run_in_threadpool(recent_runs, settings)
        found = await arun(request.app.state.redis, v.dashboard())
        return _json({**found.data, "dagster": runs, "freshness": _freshness(found.freshness)})

    @app.post(f"{v1}/playback/authorize", response_model=models.AuthorizeAnswer, tags=["playback"],
              dependencies=[playback], summary="May this stream play? Decided atomically against the plan's limit",
              responses={413: {"model": models.ErrorBody,
                               "description": "The body is larger than `REELYTICS_SERVING_MAX_BODY_BYTES`."}})
    async def authorize(request: Request, v: ViewsDep, body: models.AuthorizeRequest) -> Response:
        return Response(await decide(request.app.state.redis, v, body), media_type="application/json")

    async def decide(client: Any, v: Views, body: models.AuthorizeRequest) -> bytes:
        decision = await arun(client, v.authorize(
            account_id=body.account_id, session_id=body.session_id, device_type=body.device_type))
        authorize_answers.labels(str(decision.allowed).lower(), decision.reason).inc()
        return _json_body({"allowed": decision.allowed, "reason": decision.reason, "limit": decision.limit,
                      "active": [{"session_id": s.session_id, "device_type": s.device_type,
                                  "started_at": utc_from_ms(s.started_ms)} for s in decision.active]})

    # --- the hot routes ----------------------------------------------------------------------------------
    routes = {route.path: route for route in app.routes if isinstance(route, APIRoute)}

    async def hot_resume(client: Any, v: Views, request: Any) -> bytes:
        user_id, content_id = request
        return _answer_body(await arun(client, v.resume(user_id, content_id)))

    def authorize_request(params: tuple[str, ...], query: dict[str, Any], body: bytes
                          ) -> models.AuthorizeRequest | None:
        try:
            return models.AuthorizeRequest.model_validate_json(body)
        except ValueError:
            return None  # the declared route names the bad fields

    async def hot_engagement(client: Any, v: Views, request: Any) -> bytes:
        (user_id,), query = request
        plan = v.engagement(user_id, window_minutes=query.get("window_minutes", WINDOW_MINUTES_DEFAULT),
                            days=query.get("days", DAYS_DEFAULT))
        return _answer_body(await arun(client, plan))

    async def hot_trending(client: Any, v: Views, request: Any) -> bytes:
        _, query = request
        return _answer_body(await arun(client, v.trending(query.get("kind", TRENDING_KIND_DEFAULT),
                                                     limit=query.get("limit", TRENDING_LIMIT_DEFAULT),
                                                     country=query.get("country"))))

    async def hot_ctr(client: Any, v: Views, request: Any) -> bytes:
        (rail_id, button_id), _ = request
        return _answer_body(await arun(client, v.ctr(rail_id, button_id)))

    def path_and_query(params: tuple[str, ...], query: dict[str, Any], body: bytes) -> Any:
        return params, query

    hot_routes = [
        HotRoute("GET", re.compile(rf"{v1}/users/({_ID})/resume/({_ID})"),
                 routes[f"{v1}/users/{{user_id}}/resume/{{content_id}}"], "read",
                 lambda params, query, body: params, hot_resume),
        HotRoute("POST", re.compile(rf"{v1}/playback/authorize"), routes[f"{v1}/playback/authorize"], "playback",
                 authorize_request, decide),
        HotRoute("GET", re.compile(rf"{v1}/users/({_ID})/engagement"), routes[f"{v1}/users/{{user_id}}/engagement"],
                 "read", path_and_query, hot_engagement,
                 query={"window_minutes": _int_in(1, WINDOW_MINUTES_MAX), "days": _int_in(1, DAILY_DAYS)}),
        HotRoute("GET", re.compile(rf"{v1}/trending"), routes[f"{v1}/trending"], "read", path_and_query,
                 hot_trending, query={"kind": _one_of("vod", "live"), "limit": _int_in(1, TRENDING_LIMIT_MAX),
                                      "country": _matching(COUNTRY_PATTERN)}),
        HotRoute("GET", re.compile(rf"{v1}/ctr/({_ID})/({_ID})"), routes[f"{v1}/ctr/{{rail_id}}/{{button_id}}"],
                 "read", path_and_query, hot_ctr),
    ]
    histogram = request_histogram(registry, "reelytics_api")
    # Every other request is timed by the middleware under its route template; the hot routes time themselves.
    app.add_middleware(RequestTimer, histogram=histogram)
    app.max_body_bytes = settings.serving_max_body_bytes
    app.front = HotRoutes(app.declared, routes=hot_routes, state=app.state, authenticate=authenticate,
                          authenticate_cached=authenticate_cached, error_answer=error_answer, histogram=histogram,
                          max_body_bytes=settings.serving_max_body_bytes)
    return app


@dataclass(frozen=True)
class HotRoute:
    """A declared route that :class:`HotRoutes` answers itself when a request is well-formed: its method, a
    regular expression of its path (one group per id, matching only ids the declared route accepts), the declared
    route (its template labels the metrics), the key scope it needs, ``parse`` (path ids, checked query parameters
    and body -> the request, None when the declared route should judge it), ``handle`` (Redis client, views,
    request -> the JSON body of a 200 answer) and ``query``: each query parameter it takes, with the check that
    turns its text into the value the declared route would get (raising ValueError where the declared route
    answers 422)."""

    method: str
    path: re.Pattern[str]
    route: APIRoute
    scope: str
    parse: Callable[[tuple[str, ...], dict[str, Any], bytes], Any]
    handle: Callable[[Any, Views, Any], Awaitable[bytes]]
    query: Mapping[str, Callable[[str], Any]] = field(default_factory=dict)


_DIGITS = re.compile(r"[0-9]{1,9}")


def _int_in(low: int, high: int) -> Callable[[str], int]:
    """A query parameter's check: plain decimal digits, from ``low`` to ``high``."""
    def check(value: str) -> int:
        if not _DIGITS.fullmatch(value) or not low <= int(value) <= high:
            raise ValueError(value)
        return int(value)
    return check


def _one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(value)
        return value
    return check


def _matching(pattern: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.search(value):
            raise ValueError(value)
        return value
    return check


def _query(raw: bytes, spec: Mapping[str, Callable[[str], Any]]) -> dict[str, Any] | None:
    """A query string's parameters checked by ``spec``; None (the declared route judges) for a parameter the hot
    route does not take, one given twice or one its check refuses."""
    found: dict[str, Any] = {}
    if not raw:
        return found
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name not in spec or name in found:
            return None
        try:
            found[name] = spec[name](value)
        except ValueError:
            return None
    return found


_BODILESS = frozenset({"GET", "HEAD"})


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the request body is larger than {limit} bytes; send the fields the "
                                           "route documents, nothing more", headers={"Connection": "close"})


def bounded_receive(scope: Scope, receive: Receive, limit: int) -> Receive:
    """``receive`` for a request whose body may not exceed ``limit`` bytes: :class:`ApiError` 413 (the
    connection then closes) as soon as its ``Content-Length`` or the bytes received so far say it is larger, so
    the body is never held in memory whole. GET and HEAD bodies are never read, so they pass as they are."""
    if scope.get("method") in _BODILESS:
        return receive
    declared = _header(scope, b"content-length")
    over = declared is not None and declared.isdigit() and int(declared) > limit
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        if over:
            raise _too_large(limit)
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _too_large(limit)
        return message
    return bounded


class ServingApp(FastAPI):
    """The API's FastAPI app with :class:`HotRoutes` in front of it: ``front`` sees each request first and hands
    the rest to :meth:`declared` (FastAPI with its middleware), whose bodies :func:`bounded_receive` limits."""

    front: Any = None
    max_body_bytes: int = Settings.model_fields["serving_max_body_bytes"].default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await (self.front or self.declared)(scope, receive, send)

    async def declared(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            receive = bounded_receive(scope, receive, self.max_body_bytes)
        await super().__call__(scope, receive, send)


class HotRoutes:
    """The ASGI layer in front of the API: the routes apps call at the highest rates (a resume read, "may this
    stream play?", engagement, trending, CTR) answered without FastAPI's routing, dependency resolution, parameter
    models and middleware stack, which cost more CPU than the Redis round trip of the request (measured with
    `bench serving`). Each answer is timed under its declared route's template, as the middleware times the rest.

    It runs the declared routes' own parts: the same key check and rate limit, the same view plans, the same
    JSON and the same error answers. It takes only requests it can judge well-formed: ids that match the declared
    pattern, a key header, a body the request model accepts, query parameters the route takes, each once and within
    its limits. Anything else (a bad id, body or parameter, no key) goes to the declared route, which answers as the
    OpenAPI document says (422 naming the parameter, 401).
    """

    def __init__(self, app: Any, *, routes: list[HotRoute], state: Any,
                 authenticate: Callable[..., Awaitable[ApiKey]],
                 authenticate_cached: Callable[[str, str], ApiKey | None],
                 error_answer: Callable[[str, Exception], Response], histogram: Histogram,
                 max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.routes: dict[str, list[HotRoute]] = {}
        for hot in routes:
            self.routes.setdefault(hot.method, []).append(hot)
        self.state = state
        self.authenticate = authenticate
        self.authenticate_cached = authenticate_cached
        self.error_answer = error_answer
        self.histogram = histogram
        self._timers: dict[tuple[str, str, int], Any] = {}

    def _timer(self, hot: HotRoute, status: int) -> Any:
        """The histogram's child for the route and status (looked up once, not per request)."""
        found = self._timers.get((hot.method, hot.route.path, status))
        if found is None:
            found = self._timers[(hot.method, hot.route.path, status)] = self.histogram.labels(
                hot.method, hot.route.path, str(status))
        return found

    def _match(self, scope: dict[str, Any]) -> tuple[HotRoute, tuple[str, ...], dict[str, Any], bytes] | None:
        candidates = self.routes.get(scope["method"])
        if candidates is None:
            return None
        path = scope["path"]
        for hot in candidates:
            found = hot.path.fullmatch(path)
            if found is None:
                continue
            key = content_type = None  # each header's first value, as Starlette reads it
            for name, value in scope["headers"]:
                if name == b"x-api-key":
                    if key is None:
                        key = value
                elif name == b"content-type" and content_type is None:
                    content_type = value
            if not key or (hot.method == "POST" and _media_type(content_type) != b"application/json"):
                return None
            query = _query(scope.get("query_string", b""), hot.query)
            if query is None:
                return None
            return hot, found.groups(), query, key
        return None

    async def _answer(self, scope: dict[str, Any], hot: HotRoute, key: bytes, request: Any) -> bytes | Response:
        """The JSON body of a 200 answer, or the error answer the declared route would give."""
        state = self.state
        try:
            text_key = key.decode("latin-1")
            if self.authenticate_cached(text_key, hot.scope) is None:
                await self.authenticate(state.redis, text_key, hot.scope)
            return await hot.handle(state.redis, state.views, request)
        except Exception as exc:  # every error answers as the declared route's would
            return self.error_answer(f"{scope['method']} {scope['path']}", exc)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        matched = self._match(scope) if scope["type"] == "http" else None
        if matched is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        hot, params, query, key = matched
        body = b""
        answer: bytes | Response
        try:
            if hot.method == "POST":
                body = await _body(bounded_receive(scope, receive, self.max_body_bytes))
        except ApiError as exc:  # a body over the limit, answered as the declared route would
            answer = self.error_answer(f"{scope['method']} {scope['path']}", exc)
        else:
            request = hot.parse(params, query, body)
            if request is None:
                await self.app(scope, _replay(body), send)
                return
            answer = await self._answer(scope, hot, key, request)
        status = 200
        try:
            if isinstance(answer, bytes):
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-length", b"%d" % len(answer)), (b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": answer})
            else:
                status = answer.status_code
                await answer(scope, receive, send)
        finally:
            self._timer(hot, status).observe(time.perf_counter() - started)


async def _body(receive: Receive) -> bytes:
    """A request's whole body, as ``receive`` hands it over."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _header(scope: Mapping[str, Any], name: bytes) -> bytes | None:
    """A request header's first value, as Starlette reads it (names arrive lower-cased)."""
    return next((value for found, value in scope["headers"] if found == name), None)


def _media_type(value: bytes | None) -> bytes:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    return (value or b"").split(b";", 1)[0].strip().lower()


def _replay(body: bytes) -> Any:
    """An ASGI ``receive`` that hands the already-read body to the declared route."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}
    return receive


def app_from_environment() -> FastAPI:
    """The uvicorn factory: settings from the environment. Everything loaded until then lives as long as the
    server process: it is frozen out of the garbage collector's sight, so a full collection no longer walks it (one
    took ~50 ms with the app's modules, a pause every few seconds under load)."""
    app = create_app(load_settings())
    gc.collect()
    gc.freeze()
    return app

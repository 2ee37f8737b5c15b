"""A terminal view of every speed view as Redis holds it now (`reelytics speed show`, the demo).

Everything here reads Redis through the views' own readers and the key layout; nothing is computed that the
serving layer would not see.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from rich.table import Table

from warehouse_models.redis_io import text
from warehouse_models.redis_keys import SPEED_BUCKET_SECONDS
from warehouse_models.redis_plan import run, scan
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

_SCAN_LIMIT = 20_000
"""Keys scanned at most per view, so a large deployment answers quickly (the figures then cover a sample)."""



def _scan(client: Any, pattern: str) -> list[str]:
    return run(client, scan(pattern, limit=_SCAN_LIMIT))


def _suffix(key: str, prefix: str) -> str:
    """What follows ``prefix`` in ``key`` (the ids a key builder put there)."""
    return key[len(prefix):]


def trending_table(client: Any, settings: Settings, *, top: int) -> Table:
    from warehouse_models.metrics.trending import read_trending

    table = Table(title=f"trending: distinct viewers over the last "
                        f"{settings.speed_trending_window_seconds // 60} minutes")
    for column in ("kind", "rank", "title", "viewers", "window (UTC)"):
        table.add_column(column, justify="right" if column in ("rank", "viewers") else "left")
    for kind in ("live", "vod"):
        window = {text(k): text(v) for k, v in client.hgetall(settings.keys.trending_window(kind)).items()}
        span = "-"
        if window.get("start") and window.get("end"):
            span = (time.strftime("%H:%M", time.gmtime(int(float(window["start"])))) + "-"
                    + time.strftime("%H:%M", time.gmtime(int(float(window["end"])))))
        for rank, (content, viewers) in enumerate(read_trending(client, settings.keys, kind, n=top), start=1):
            table.add_row(kind, str(rank), content, f"{viewers:,}", span if rank == 1 else "")
    return table


def ctr_table(client: Any, settings: Settings, *, top: int) -> Table:
    pattern = settings.keys.ctr_rate("*", "*")
    prefix = settings.keys.ctr_rate("", "")[:-1]
    table = Table(title="CTR per rail and button (rolling window)")
    for column in ("rail", "button", "impressions", "clicks", "rate"):
        table.add_column(column, justify="left" if column in ("rail", "button") else "right")
    rows = []
    pipe = client.pipeline(transaction=False)
    keys = _scan(client, pattern)
    for key in keys:
        pipe.hgetall(key)
    for key, values in zip(keys, pipe.execute(), strict=True):
        fields = {text(k): text(v) for k, v in values.items()}
        rail, _, button = _suffix(key, prefix).partition(":")
        rows.append((rail, button, int(fields.get("impressions", 0)), int(fields.get("clicks", 0)),
                     float(fields.get("rate", 0.0))))
    for rail, button, impressions, clicks, rate in sorted(rows, key=lambda r: -r[2])[:top]:
        table.add_row(rail, button, f"{impressions:,}", f"{clicks:,}", f"{rate:.1%}")
    return table


def concurrency_table(client: Any, settings: Settings, *, top: int) -> Table:
    pattern = settings.keys.account_over_limit("*")
    keys = _scan(client, pattern)
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.zcard(key)
    counts = sorted(zip(keys, pipe.execute(), strict=True), key=lambda kv: -kv[1])
    table = Table(title=f"accounts streaming over their plan's limit ({len(keys):,} accounts)")
    for column in ("account", "sessions over the limit", "limit", "active now"):
        table.add_column(column, justify="left" if column == "account" else "right")
    from serving.views.speed import read_concurrency

    for key, count in counts[:top]:
        account = _suffix(key, settings.keys.account_over_limit(""))
        view = read_concurrency(client, settings.keys, account) or {}
        table.add_row(account, str(count), str(view.get("limit", "-")), str(len(view.get("active", []))))
    return table


def qoe_table(client: Any, settings: Settings, *, top: int) -> Table:
    """QoE per title over the newest minute buckets Redis holds (a sample of at most the scan limit)."""
    from warehouse_models.metrics.qoe import merge_sums, qoe_metrics

    prefix = settings.keys.qoe_bucket("", "", "", 0).split("::", 1)[0] + ":"
    keys = _scan(client, prefix + "*")
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    per_title: dict[str, list[dict[str, int]]] = {}
    for key, values in zip(keys, pipe.execute(), strict=True):
        content = _suffix(key, prefix).split(":", 1)[0]
        per_title.setdefault(content, []).append({text(k): int(float(text(v))) for k, v in values.items()})
    table = Table(title="QoE per title (all live minute buckets)")
    for column in ("title", "plays", "avg startup ms", "rebuffering", "avg kbps", "start failures",
                   "exits before start", "failures after start"):
        table.add_column(column, justify="left" if column == "title" else "right")
    merged = {content: merge_sums(parts) for content, parts in per_title.items()}
    for content, sums in sorted(merged.items(), key=lambda kv: -kv[1].get("plays", 0))[:top]:
        metrics = qoe_metrics(sums)

        def fmt(name: str, spec: str, metrics: dict[str, float | int | None] = metrics) -> str:
            value = metrics.get(name)
            return "-" if value is None else format(value, spec)

        table.add_row(content, f"{sums.get('plays', 0):,}", fmt("video_startup_time_ms", ",.0f"),
                      fmt("rebuffering_ratio", ".2%"), fmt("average_bitrate_kbps", ",.0f"),
                      f"{sums.get('start_failures', 0):,}", f"{sums.get('exits_before_start', 0):,}",
                      f"{sums.get('failures_after_start', 0):,}")
    return table


def alerts_table(client: Any, settings: Settings, *, top: int) -> Table:
    from serving.views.speed import read_active_alerts, read_alerts

    active = read_active_alerts(client, settings.keys)
    table = Table(title=f"traffic-spike alerts ({len(active)} open)")
    for column in ("type", "scope", "rate/s", "baseline/s", "since (UTC)", "until (UTC)"):
        table.add_column(column, justify="right" if "/s" in column else "left")

    def clock(epoch: Any) -> str:
        return time.strftime("%H:%M:%S", time.gmtime(int(epoch))) if isinstance(epoch, int) else "-"

    for alert in read_alerts(client, settings.keys, n=top):
        table.add_row(str(alert.get("type", "-")), str(alert.get("scope", "-")), str(alert.get("rate", "-")),
                      f"{float(alert.get('baseline', 0.0)):.2f}", clock(alert.get("since")), clock(alert.get("until")))
    return table


def user_table(client: Any, settings: Settings, user: str) -> Table:
    from serving.views.speed import read_recent, read_resume
    from warehouse_models.metrics.engagement import read_engagement

    now = time.time()
    hour = read_engagement(client, settings.keys, user, since_epoch=now - 3600 - SPEED_BUCKET_SECONDS)
    table = Table(title=f"user {user}: {hour['watch_seconds']:,} s watched, {hour['events']:,} events, "
                        f"{hour['clicks']:,} clicks in the last hour")
    for column in ("title", "last watched (UTC)", "resume at (s)"):
        table.add_column(column)
    positions = read_resume(client, settings.keys, user) or {}
    for content, at in read_recent(client, settings.keys, user, n=10):
        position = positions.get(content) if isinstance(positions, dict) else None
        table.add_row(content, at.strftime("%H:%M:%S"),
                      f"{position['position_seconds']:,.0f}" if position else "-")
    return table


def account_table(client: Any, settings: Settings, account: str) -> Table:
    from serving.views.speed import read_concurrency

    view = read_concurrency(client, settings.keys, account)
    table = Table(title=f"account {account}: may its streams play?")
    table.add_column("view")
    table.add_row(json.dumps(view, indent=1) if view else "nothing known about this account")
    return table


def render_views(client: Any, settings: Settings, *, user: str | None = None, account: str | None = None,
                 top: int = 5) -> list[Table]:
    """Every view as a rich Table."""
    tables = [trending_table(client, settings, top=top), ctr_table(client, settings, top=top),
              concurrency_table(client, settings, top=top), qoe_table(client, settings, top=top),
              alerts_table(client, settings, top=top)]
    if user:
        tables.append(user_table(client, settings, user))
    if account:
        tables.append(account_table(client, settings, account))
    return tables

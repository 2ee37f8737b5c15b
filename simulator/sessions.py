"""Viewing sessions and rail interactions over a time range, emitted as one event-time-ordered stream.

The stream is a pure function of :class:`SimulationConfig`: the same seed, start and parameters give the
same events in the same order with the same ids. It is generated lazily: sessions are planned up front (a
few numbers each), and each session's events are materialised only when the merge reaches its start, so an
hour of a few hundred thousand events never sits in memory at once.

What happens, in short:

* **Catalog first.** Every title, channel and profile is sent as ``content_upsert`` / ``user_upsert`` at the
  start of the range.
* **Sessions.** A profile browses rails (``impression``), clicks a tile (``click``), sends ``play_request``;
  then either fails to start (a fatal ``error`` before ``first_frame``), gives up before the first frame
  (``play_end`` with no ``first_frame``), or plays: ``first_frame`` with ``startup_ms``, a ``heartbeat``
  every 10 s (position, player state, bitrate, quality), and along the way ``quality_change``,
  ``buffer_start``/``buffer_end`` (``stall_ms``), ``pause``/``resume``, ``seek`` and occasional ``error``.
  A session ends by completing the title (``play_end``), by an explicit stop (``play_end``), by a fatal
  error, or by abandonment (heartbeats simply stop). Sessions still running at the end of the range are
  cut there.
* **Stream limits.** A household's sessions respect its plan (``PLAN_STREAM_LIMITS``): a request beyond it
  is refused with a fatal ``STREAM_LIMIT_REACHED`` error. A few accounts share their password: guests on
  other devices run more concurrent streams than the plan allows, which is what concurrency checks must find.
* **A traffic spike.** A live event: many users join one live channel within a few minutes.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from simulator.world import (
    GENRE_VOCABULARY,
    Account,
    Content,
    Device,
    User,
    World,
    build_world,
    content_upsert,
    user_upsert,
)
from warehouse_models.events import HEARTBEAT_INTERVAL_SECONDS, QUALITY_LEVELS, SCHEMA_VERSION, EventType
from warehouse_models.metrics.variants import RECOMMENDATION_RAILS, parse_variants, variant_of
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

HEARTBEAT_MS = HEARTBEAT_INTERVAL_SECONDS * 1000
"""Players send a heartbeat every :data:`~warehouse_models.events.HEARTBEAT_INTERVAL_SECONDS` while a session is
open."""

BITRATES_KBPS: dict[str, int] = {"240p": 400, "360p": 800, "480p": 1400, "720p": 3000, "1080p": 6000,
                                 "2160p": 16000}
"""The bitrate ladder, one rendition per quality level."""

_PLAN_MAX_LEVEL = {"basic": 3, "standard": 4, "premium": 5}
_SMALL_SCREENS = frozenset({"mobile", "tablet", "web"})
_NETWORKS = ("excellent", "good", "fair", "poor")
_NETWORK_WEIGHTS = {
    "tv": (0.45, 0.35, 0.15, 0.05), "console": (0.45, 0.35, 0.15, 0.05), "set_top_box": (0.5, 0.35, 0.12, 0.03),
    "web": (0.35, 0.4, 0.18, 0.07), "tablet": (0.3, 0.4, 0.2, 0.1), "mobile": (0.2, 0.35, 0.28, 0.17),
}
_STARTUP_FACTOR = {"excellent": 0.7, "good": 1.0, "fair": 1.7, "poor": 3.2}
_BUFFER_P = {"excellent": 0.004, "good": 0.01, "fair": 0.03, "poor": 0.07}
_START_FAIL_P = {"excellent": 0.01, "good": 0.015, "fair": 0.03, "poor": 0.07}
_EXIT_BEFORE_START_P = {"excellent": 0.01, "good": 0.015, "fair": 0.03, "poor": 0.06}
_FATAL_START_CODES = ("DRM_LICENSE_FAILED", "MANIFEST_LOAD_FAILED", "MEDIA_ERR_SRC_NOT_SUPPORTED",
                      "NETWORK_TIMEOUT")
_FATAL_MID_CODES = ("DECODER_CRASH", "NETWORK_LOST", "CDN_HTTP_5XX")
_SOFT_CODES = ("SEGMENT_RETRY", "DRM_RENEWAL_DELAYED", "SUBTITLE_LOAD_FAILED")
STREAM_LIMIT_CODE = "STREAM_LIMIT_REACHED"
"""Error code of a play request refused because the account already runs its plan's streams."""

_LEAD_MS = 60_000
"""Interactions happen at most this long before the play request they lead to."""


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """Everything that determines a simulated event stream (same config, byte-identical stream)."""

    start: datetime
    """First instant of the range (aware; normalised to UTC, truncated to the millisecond)."""
    duration: timedelta = timedelta(hours=1)
    seed: int = 42
    users: int = 2000
    titles: int = 400
    channels: int = 12
    sessions_per_user_hour: float = 0.5
    """Mean viewing sessions a profile starts per simulated hour (heavy viewers more, light ones less)."""
    browses_per_user_hour: float = 0.3
    """Mean rail visits per profile per hour that lead to no playback (impressions, sometimes a click)."""
    live_share: float = 0.15
    """Share of ordinary sessions on a live channel rather than a VOD title."""
    taste_share: float = 0.8
    """Probability a VOD pick comes from one of the profile's favourite genres."""
    spike: bool = True
    """Whether a live event happens (many users join one live channel within a few minutes)."""
    spike_share: float = 0.15
    """Share of all profiles that join the live event."""
    sharer_share: float = 0.03
    """Share of accounts that share their password and exceed their stream limit (at least one if > 0)."""
    recs_variants: str = Settings.model_fields["recs_variants"].default
    recs_variant_salt: str = Settings.model_fields["recs_variant_salt"].default
    """The recommendation A/B split the apps follow (the deployment's defaults): the ``top_picks`` rail's tiles
    carry the user's variant (``rec_variant``)."""
    variant_lift: float = 0.6
    """The planted variant response: a user in the ``live`` variant finds this share of the favourite-genre titles
    they watch on ``top_picks`` (the live recommendations) instead of the genre's rail, so ``live`` has the higher
    CTR on ``top_picks``; nothing else differs between the variants."""
    search_share: float = 0.2
    """Share of VOD sessions (and of browses) that start with a search: words of the title's genre (and
    sometimes of its title), the genre's titles shown, the title chosen (a browse's search chooses none)."""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        start = self.start.astimezone(timezone.utc)
        object.__setattr__(self, "start", start.replace(microsecond=start.microsecond // 1000 * 1000))
        if self.duration < timedelta(minutes=1):
            raise ValueError("duration must be at least one minute")
        if self.users < 1:
            raise ValueError("users must be at least 1")
        for name in ("sessions_per_user_hour", "browses_per_user_hour"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("live_share", "taste_share", "spike_share", "sharer_share", "search_share", "variant_lift"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")

    @property
    def end(self) -> datetime:
        """First instant after the range (events are in ``[start, end)``)."""
        return self.start + self.duration

    @property
    def start_ms(self) -> int:
        return epoch_ms(self.start)

    @property
    def end_ms(self) -> int:
        return self.start_ms + int(self.duration.total_seconds() * 1000)

    @property
    def run_tag(self) -> str:
        """Identifies this run in event and session ids: the seed and the start (epoch seconds)."""
        return f"{self.seed}-{self.start_ms // 1000}"


@dataclass(frozen=True, slots=True)
class SpikePlan:
    """The live event: which channel, and the window in which its viewers join."""

    channel_id: str
    start: datetime
    end: datetime

    def to_dict(self) -> dict[str, str]:
        return {"channel_id": self.channel_id, "start": _ts(epoch_ms(self.start)), "end": _ts(epoch_ms(self.end))}


@dataclass(slots=True)
class _Plan:
    """One planned visit: a viewing session or a browse-only visit (content is chosen when materialised)."""

    index: int
    start_ms: int
    end_ms: int
    """Planned end of the session (wall clock); earlier if the title completes or a fatal error happens."""
    user: User
    account: Account
    device: Device
    kind: str
    """One of session, spike, shared (a guest over the plan's limit), denied (refused) or browse."""
    content: Content | None = None


@dataclass(slots=True)
class _Progress:
    """Where a profile stopped in a title (for continue-watching)."""

    end_ms: int
    content: Content
    position: float


def epoch_ms(value: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware datetime (exact integer arithmetic)."""
    delta = value.astimezone(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


@lru_cache(maxsize=8192)
def _second_prefix(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")


def _ts(ms: int) -> str:
    """Epoch milliseconds in the canonical wire form (the same text as ``format_timestamp``)."""
    return f"{_second_prefix(ms // 1000)}{ms % 1000:03d}Z"


def _draw(roll: float, chances: tuple[tuple[str, float], ...]) -> str | None:
    """The outcome a uniform ``roll`` in [0, 1) lands on, given each outcome's chance (None: nothing)."""
    for name, chance in chances:
        if roll < chance:
            return name
        roll -= chance
    return None


def spike_plan(config: SimulationConfig) -> SpikePlan | None:
    """The live event of a config: the first live channel, joins over a few minutes at 60 % of the range."""
    if not config.spike or config.channels < 1:
        return None
    offset = timedelta(seconds=int(config.duration.total_seconds() * 0.6) // 60 * 60)
    start = config.start + offset
    window = min(timedelta(minutes=5), max(timedelta(minutes=1), config.duration / 10))
    return SpikePlan("live-000", start, min(start + window, config.end))


def build_world_for(config: SimulationConfig) -> World:
    """The world a config simulates (depends on the seed and sizes, not on the time range)."""
    return build_world(seed=config.seed, users=config.users, titles=config.titles, channels=config.channels,
                       sharer_share=config.sharer_share)


# --- planning ---------------------------------------------------------------------------------------------

def _fits(streams: list[_Plan], start: int, end: int, limit: int) -> bool:
    """Whether one more stream over [start, end) keeps the account within ``limit`` concurrent streams."""
    overlapping = [(p.start_ms, p.end_ms) for p in streams if p.start_ms < end and start < p.end_ms]
    if len(overlapping) < limit:
        return True
    points = [start] + [a for a, _ in overlapping if a > start]
    return all(sum(1 for a, b in overlapping if a <= point < b) < limit for point in points)


def _planned_length_ms(rng: random.Random) -> int:
    """How long a viewer means to stay: mostly short visits, some long sittings."""
    minutes = rng.uniform(40, 150) if rng.random() < 0.3 else rng.uniform(2, 45)
    return int(minutes * 60_000)


def _plan(config: SimulationConfig, world: World) -> list[_Plan]:
    """Plan every visit: who, when, on which device, for how long (pure in the config and the world).

    A profile watches one thing at a time: starting a new session ends its previous one a minute earlier
    (time to browse), and a session that would leave less than a minute of the previous one is not started.
    A household stays within its plan's limit (a request beyond it is planned as refused); only the
    password-sharing bursts exceed it.
    """
    rng = random.Random(f"reelytics-plan:{config.seed}:{config.start_ms}:{config.end_ms}")
    start_ms, end_ms = config.start_ms, config.end_ms
    span = end_ms - start_ms
    accounts = world.accounts_by_id
    users_by_id = world.users_by_id
    streaming: dict[str, list[_Plan]] = {}
    plans: list[_Plan] = []

    # Password sharing: every sharer runs its limit + 1 (or + 2) overlapping streams on guests' devices.
    for account in (a for a in world.accounts if a.is_sharer):
        burst = start_ms + int(rng.uniform(0.0, 0.35) * span)
        for j in range(account.max_streams + 1 + (rng.random() < 0.4)):
            begin = burst + int(rng.uniform(0.0, min(120_000, 0.05 * span)))
            user = users_by_id[account.user_ids[j % len(account.user_ids)]]
            plan = _Plan(0, begin, begin + int(rng.uniform(0.4, 0.6) * span), user, account,
                         account.guest_devices[j], "shared")
            plans.append(plan)
            streaming.setdefault(account.account_id, []).append(plan)

    # Candidate household sessions (the live event's joiners and ordinary viewing), judged in start order.
    candidates: list[tuple[int, int, User, str, Content | None]] = []
    spike = spike_plan(config)
    if spike is not None:
        channel = next(c for c in world.channels if c.content_id == spike.channel_id)
        lo, hi = epoch_ms(spike.start), epoch_ms(spike.end)
        for user in rng.sample(world.users, max(1, round(config.spike_share * len(world.users)))):
            begin = rng.randrange(lo, hi)
            candidates.append((begin, int(rng.uniform(10, 40) * 60_000), user, "spike", channel))
    hours = span / 3_600_000
    activity = [rng.lognormvariate(0.0, 0.8) for _ in world.users]
    n_sessions = round(config.sessions_per_user_hour * hours * len(world.users))
    n_browses = round(config.browses_per_user_hour * hours * len(world.users))
    for user in rng.choices(world.users, weights=activity, k=n_sessions):
        candidates.append((start_ms + rng.randrange(span), _planned_length_ms(rng), user, "session", None))
    candidates.sort(key=lambda c: (c[0], c[2].user_id))
    last_of_user: dict[str, _Plan] = {}
    for begin, length, user, kind, content in candidates:
        account = accounts[user.account_id]
        previous = last_of_user.get(user.user_id)
        if previous is not None and previous.end_ms > begin - _LEAD_MS:
            if begin - _LEAD_MS < previous.start_ms + _LEAD_MS:
                continue
            previous.end_ms = begin - _LEAD_MS
        plan = _Plan(0, begin, begin + length, user, account, user.device, kind, content)
        streams = streaming.setdefault(account.account_id, [])
        if _fits(streams, begin, begin + length, account.max_streams):
            streams.append(plan)
            last_of_user[user.user_id] = plan
        else:
            plan.kind = "denied"
        plans.append(plan)
    for user in rng.choices(world.users, weights=activity, k=n_browses):
        begin = start_ms + rng.randrange(span)
        plans.append(_Plan(0, begin, begin + 60_000, user, accounts[user.account_id], user.device, "browse"))
    for index, plan in enumerate(plans):
        plan.index = index
    plans.sort(key=lambda p: (p.start_ms, p.index))
    logger.debug("planned %d visits (%d session candidates, %d browses)", len(plans), len(candidates), n_browses)
    return plans


# --- materialising one visit --------------------------------------------------------------------------------

class _Emitter:
    """Collects one visit's events as (time ms, event) with the fields every event of the visit shares."""

    def __init__(self, base: dict[str, Any], range_start: int, range_end: int) -> None:
        self.base = base
        self.range_start = range_start
        self.range_end = range_end
        self.events: list[tuple[int, dict[str, Any]]] = []

    def emit(self, event_type: EventType, ms: int, **fields: Any) -> None:
        if ms >= self.range_end:
            return
        ms = max(ms, self.range_start)
        event: dict[str, Any] = {"event_id": "", "schema_version": SCHEMA_VERSION, "event_type": event_type.value,
                                 "event_timestamp": _ts(ms)}
        event.update(self.base)
        event.update(fields)
        self.events.append((ms, event))


class _Materialiser:
    """Turns plans into events; keeps the little cross-session state (what each profile half-watched)."""

    def __init__(self, config: SimulationConfig, world: World) -> None:
        self.config = config
        self.world = world
        self.progress: dict[str, list[_Progress]] = {}
        self.trending = sorted(world.titles, key=lambda c: -c.popularity)[:20]
        self.variants = parse_variants(config.recs_variants)

    def variant(self, user: User) -> str:
        return variant_of(user.user_id, self.variants, self.config.recs_variant_salt)

    # -- interactions --
    def _rail(self, rng: random.Random, user: User, rail_id: str) -> list[Content]:
        if rail_id == "trending_now":
            return rng.sample(self.trending, min(8, len(self.trending)))
        if rail_id == "live_now":
            return rng.sample(self.world.channels, min(8, len(self.world.channels)))
        if rail_id.startswith("genre_"):
            genre = rail_id.removeprefix("genre_")
            pool = [c for c in self.world.titles if c.genre_primary == genre] or self.world.titles
            return rng.sample(pool, min(8, len(pool)))
        if rail_id == "continue_watching":
            return [p.content for p in self.progress.get(user.user_id, [])][-8:]
        return [self.world.pick_title(user, rng, taste_share=self.config.taste_share) for _ in range(8)]

    def _browse(self, em: _Emitter, rng: random.Random, plan: _Plan, at: int, chosen: Content | None,
                chosen_rail: str, *, play: bool) -> None:
        """Impressions of a home page (and a detail page), with a click on the chosen tile when there is one."""
        user = plan.user
        rails = ["top_picks", "trending_now", f"genre_{rng.choice(user.favourite_genres)}", "live_now"]
        if self.progress.get(user.user_id):
            rails.insert(0, "continue_watching")
        shown = rails[: rng.randint(2, len(rails))]
        if chosen_rail not in shown:
            shown.append(chosen_rail)
        t = at
        click: tuple[str, int] | None = None
        for rail_id in shown:
            unique = {c.content_id: c for c in self._rail(rng, user, rail_id)}
            if chosen is not None:
                unique.pop(chosen.content_id, None)
            tiles = list(unique.values())[:8]
            if chosen is not None and rail_id == chosen_rail:
                slot = min(len(tiles), int(rng.expovariate(0.5)))
                tiles.insert(slot, chosen)
                click = (rail_id, slot)
            stamp = {"rec_variant": self.variant(user)} if rail_id in RECOMMENDATION_RAILS else {}
            for slot, content in enumerate(tiles):
                em.emit(EventType.IMPRESSION, t, page="home", rail_id=rail_id, button_id="tile", slot=slot,
                        content_id=content.content_id, **stamp)
            t += rng.randint(300, 2500)
        if chosen is None or click is None:
            return
        t += rng.randint(500, 6000)
        stamp = {"rec_variant": self.variant(user)} if click[0] in RECOMMENDATION_RAILS else {}
        em.emit(EventType.CLICK, t, page="home", rail_id=click[0], button_id="tile", slot=click[1],
                content_id=chosen.content_id, **stamp)
        if chosen.is_live and play:
            return
        t += rng.randint(300, 1500)
        buttons = ("play", "trailer", "add_to_list")
        for slot, button in enumerate(buttons):
            em.emit(EventType.IMPRESSION, t, page="detail", rail_id="detail_actions", button_id=button, slot=slot,
                    content_id=chosen.content_id)
        if play:
            button = "play"
        elif rng.random() < 0.5:
            button = rng.choice(buttons[1:])
        else:
            return
        t += rng.randint(1000, 8000)
        em.emit(EventType.CLICK, t, page="detail", rail_id="detail_actions", button_id=button,
                slot=buttons.index(button), content_id=chosen.content_id)

    def _search(self, em: _Emitter, plan: _Plan, content: Content, at: int, *, chosen: bool) -> None:
        """Maybe a search that finds ``content``: two or three words of its genre (sometimes one of its title), the
        genre's titles shown by popularity, ``content`` among them and chosen when ``chosen``.

        Its own random stream (by visit), so the visit's other events are the same with or without searches."""
        rng = random.Random(f"reelytics-search:{self.config.seed}:{self.config.start_ms}:{plan.index}")
        if rng.random() >= self.config.search_share:
            return
        words = list(rng.sample(GENRE_VOCABULARY[content.genre_primary]["words"], rng.randint(2, 3)))
        if rng.random() < 0.3:
            words.append(content.title.split()[-1].lower())
        pool = [c for c in self.world.titles if c.genre_primary == content.genre_primary and c != content]
        shown = sorted(rng.sample(pool, min(7, len(pool))), key=lambda c: -c.popularity)[:rng.randint(3, 7)]
        shown.insert(rng.randrange(len(shown) + 1), content)
        fields: dict[str, Any] = {"search_query": " ".join(words), "results_shown": [c.content_id for c in shown]}
        if chosen:
            fields["content_id"] = content.content_id
        # Never earlier than the visit's lead: the stream merges visits in order from there.
        em.emit(EventType.SEARCH, max(at - rng.randint(1_000, 9_000), plan.start_ms - _LEAD_MS), **fields)

    # -- choosing what to watch --
    def _choose(self, rng: random.Random, plan: _Plan) -> tuple[Content, float, str]:
        """(content, start position, rail it was found on)."""
        user = plan.user
        if plan.content is not None:
            return plan.content, 0.0, "live_now"
        if plan.kind == "shared":
            for _ in range(8):
                title = self.world.pick_title(user, rng, taste_share=self.config.taste_share)
                if (title.duration_minutes or 0) * 60_000 >= plan.end_ms - plan.start_ms + 120_000:
                    return title, 0.0, "top_picks"
            return self.world.pick_channel(user, rng), 0.0, "live_now"
        if rng.random() < self.config.live_share:
            return self.world.pick_channel(user, rng), 0.0, "live_now"
        history = [p for p in self.progress.get(user.user_id, []) if p.end_ms <= plan.start_ms - _LEAD_MS]
        if history and rng.random() < 0.5:
            last = history[-1]
            return last.content, last.position, "continue_watching"
        title = self.world.pick_title(user, rng, taste_share=self.config.taste_share)
        rail = f"genre_{title.genre_primary}" if title.genre_primary in user.favourite_genres else rng.choice(
            ("top_picks", "trending_now"))
        # The planted variant response, on its own random stream so the rest of the visit is the same.
        lift = random.Random(f"reelytics-variant:{self.config.seed}:{self.config.start_ms}:{plan.index}")
        if rail.startswith("genre_") and self.variant(user) == "live" and lift.random() < self.config.variant_lift:
            rail = "top_picks"
        return title, 0.0, rail

    def _remember(self, user: User, content: Content, end_ms: int, position: float) -> None:
        if content.is_live:
            return
        entries = [p for p in self.progress.get(user.user_id, []) if p.content.content_id != content.content_id]
        if position < 0.95 * (content.duration_minutes or 0) * 60:
            entries.append(_Progress(end_ms, content, position))
        self.progress[user.user_id] = entries[-10:]

    # -- one visit --
    def materialise(self, plan: _Plan) -> list[tuple[int, dict[str, Any]]]:
        config = self.config
        rng = random.Random(f"reelytics-visit:{config.seed}:{config.start_ms}:{plan.index}")
        device = plan.device
        network = rng.choices(_NETWORKS, weights=_NETWORK_WEIGHTS[device.device_type])[0]
        base = {"account_id": plan.account.account_id, "user_id": plan.user.user_id, "device_id": device.device_id,
                "device_type": device.device_type, "country": plan.user.country if plan.kind != "shared"
                else rng.choice(("US", "GB", "DE", "FR", "BR", "MX", "IN")),
                "network_quality": network, "app_version": device.app_version}
        em = _Emitter(base, config.start_ms, config.end_ms)
        lead = rng.randint(_LEAD_MS // 2, _LEAD_MS - 10_000)
        if plan.kind == "browse":
            title = self.world.pick_title(plan.user, rng, taste_share=self.config.taste_share)
            clicked = title if rng.random() < 0.2 else None
            self._search(em, plan, title, plan.start_ms - 20_000, chosen=False)
            self._browse(em, rng, plan, plan.start_ms, clicked, "top_picks", play=False)
            return em.events
        content, position, rail = self._choose(rng, plan)
        if not content.is_live and position == 0.0:
            self._search(em, plan, content, plan.start_ms - lead, chosen=True)
        self._browse(em, rng, plan, plan.start_ms - lead, content, rail, play=True)
        session_id = f"ses-{config.run_tag}-{plan.index}"
        em.base = {**base, "session_id": session_id, "content_id": content.content_id, "is_live": content.is_live}
        self._play(em, rng, plan, content, position, network)
        return em.events

    def _play(self, em: _Emitter, rng: random.Random, plan: _Plan, content: Content, position: float,
              network: str) -> None:
        """A viewing session: start (or fail to), heartbeats and incidents, then an end."""
        t = plan.start_ms
        live = content.is_live
        if live:
            # A live position is the number of seconds into the channel's current day-long window.
            position = float((t // 1000) % 86_400)
        em.emit(EventType.PLAY_REQUEST, t, position_seconds=round(position, 3))
        if plan.kind == "denied":
            em.emit(EventType.ERROR, t + rng.randint(200, 900), error_code=STREAM_LIMIT_CODE, error_fatal=True)
            return
        robust = plan.kind == "shared"
        if not robust:
            r = rng.random()
            if r < _START_FAIL_P[network]:
                em.emit(EventType.ERROR, t + rng.randint(1_000, 12_000), error_code=rng.choice(_FATAL_START_CODES),
                        error_fatal=True)
                return
            if r < _START_FAIL_P[network] + _EXIT_BEFORE_START_P[network]:
                em.emit(EventType.PLAY_END, t + rng.randint(2_000, 20_000), position_seconds=round(position, 3))
                return
        startup_ms = int(min(60_000, max(150, rng.lognormvariate(math.log(900), 0.45) * _STARTUP_FACTOR[network])))
        device_cap = 4 if plan.device.device_type in _SMALL_SCREENS else 5
        cap = min(_PLAN_MAX_LEVEL[plan.account.plan], device_cap)
        target = {"excellent": cap, "good": cap - 1, "fair": min(cap, 2), "poor": min(cap, 1)}[network]
        level = max(0, target - (rng.random() < 0.5))
        duration_s = float((content.duration_minutes or 0) * 60)

        state = "playing"
        until = 0
        stall_from = 0
        last_t = t + startup_ms
        completed_at: int | None = None
        em.emit(EventType.FIRST_FRAME, last_t, startup_ms=startup_ms, bitrate_kbps=BITRATES_KBPS[QUALITY_LEVELS[level]],
                quality_level=QUALITY_LEVELS[level])

        def quality(ms: int, new_level: int) -> None:
            nonlocal level
            if new_level == level:
                return
            em.emit(EventType.QUALITY_CHANGE, ms, bitrate_kbps=BITRATES_KBPS[QUALITY_LEVELS[new_level]],
                    previous_bitrate_kbps=BITRATES_KBPS[QUALITY_LEVELS[level]],
                    quality_level=QUALITY_LEVELS[new_level], position_seconds=round(position, 3))
            level = new_level

        def advance(to: int) -> None:
            """Move the clock to ``to``: end stalls and pauses that are due, accrue played time."""
            nonlocal state, last_t, position, completed_at
            if state != "playing" and until <= to:
                last_t = until
                if state == "buffering":
                    em.emit(EventType.BUFFER_END, until, stall_ms=until - stall_from,
                            position_seconds=round(position, 3))
                    if level > 0 and rng.random() < 0.5:
                        quality(until + 1, level - 1)
                else:
                    em.emit(EventType.RESUME, until, position_seconds=round(position, 3))
                state = "playing"
            if state == "playing" and to > last_t:
                played = (to - last_t) / 1000
                if not live and position + played >= duration_s:
                    completed_at = last_t + int((duration_s - position) * 1000)
                    position = duration_s
                else:
                    position += played
            last_t = max(last_t, to)

        # Chance of each incident in one 10-second interval of playing (the rest of the time: nothing).
        incidents = (
            ("buffer", _BUFFER_P[network]),
            ("quality", 0.02),
            ("pause", 0.0 if live else 0.006),
            ("seek", 0.0 if live or robust else 0.004),
            ("soft_error", 0.0015),
            ("fatal_error", 0.0 if robust else 0.0004),
        )
        heartbeat = last_t
        while True:
            next_hb = heartbeat + HEARTBEAT_MS
            if next_hb > plan.end_ms or heartbeat >= em.range_end:
                break
            if state == "playing":
                at = heartbeat + rng.randint(500, 9_500)
                incident = _draw(rng.random(), incidents)
                advance(at)
                if completed_at is not None:
                    break
                if incident == "buffer":
                    state, stall_from = "buffering", at
                    until = at + int(min(60_000, rng.lognormvariate(math.log(2_500), 0.9)))
                    em.emit(EventType.BUFFER_START, at, position_seconds=round(position, 3))
                elif incident == "quality":
                    step = 1 if level < target else -1 if level > target else rng.choice((-1, 1))
                    quality(at, max(0, min(cap, level + step)))
                elif incident == "pause":
                    state, until = "paused", at + int(min(900_000, rng.lognormvariate(math.log(40_000), 1.0)))
                    em.emit(EventType.PAUSE, at, position_seconds=round(position, 3))
                elif incident == "seek":
                    before = position
                    position = max(0.0, min(duration_s - 5.0, position + rng.choice((-1, 1)) * rng.uniform(30, 600)))
                    em.emit(EventType.SEEK, at, seek_from_seconds=round(before, 3), position_seconds=round(position, 3))
                    if rng.random() < 0.6:
                        state, stall_from, until = "buffering", at + 1, at + 1 + rng.randint(200, 2_500)
                        em.emit(EventType.BUFFER_START, at + 1, position_seconds=round(position, 3))
                elif incident == "soft_error":
                    em.emit(EventType.ERROR, at, error_code=rng.choice(_SOFT_CODES), error_fatal=False,
                            position_seconds=round(position, 3))
                elif incident == "fatal_error":
                    em.emit(EventType.ERROR, at, error_code=rng.choice(_FATAL_MID_CODES), error_fatal=True,
                            position_seconds=round(position, 3))
                    self._remember(plan.user, content, at, position)
                    return
            advance(next_hb)
            if completed_at is not None:
                break
            em.emit(EventType.HEARTBEAT, next_hb, position_seconds=round(position, 3), player_state=state,
                    bitrate_kbps=BITRATES_KBPS[QUALITY_LEVELS[level]], quality_level=QUALITY_LEVELS[level])
            heartbeat = next_hb

        if completed_at is not None:
            em.emit(EventType.PLAY_END, completed_at, position_seconds=round(position, 3))
            self._remember(plan.user, content, completed_at, position)
            return
        end = max(plan.end_ms, heartbeat + 1)
        if end >= em.range_end:
            return
        advance(end)
        if completed_at is not None:
            em.emit(EventType.PLAY_END, completed_at, position_seconds=round(position, 3))
        elif robust or rng.random() < 0.65:
            em.emit(EventType.PLAY_END, end, position_seconds=round(position, 3))
        self._remember(plan.user, content, end, position)


# --- the stream -----------------------------------------------------------------------------------------------

def catalog_events(config: SimulationConfig, world: World) -> list[dict[str, Any]]:
    """Every title, channel and profile as catalog upserts at the start of the range (ids not yet set)."""
    at = config.start
    events = [content_upsert(c, event_id="", at=at) for c in world.content]
    accounts = world.accounts_by_id
    events += [user_upsert(u, accounts[u.account_id], event_id="", at=at) for u in world.users]
    return events


def generate_events(config: SimulationConfig, world: World | None = None) -> Iterator[dict[str, Any]]:
    """The whole stream in event-time order: catalog upserts first, then sessions and interactions.

    Event ids are ``ev-<seed>-<start epoch s>-<n>``, numbered in stream order, so they are unique within a
    run, identical across identical runs, and distinct between runs with another seed or start.
    """
    world = world or build_world_for(config)
    plans = _plan(config, world)
    maker = _Materialiser(config, world)
    prefix = f"ev-{config.run_tag}-"
    counter = 0
    for event in catalog_events(config, world):
        event["event_id"] = f"{prefix}{counter}"
        counter += 1
        yield event
    heap: list[tuple[int, int, int, dict[str, Any]]] = []
    next_plan = 0
    while heap or next_plan < len(plans):
        while next_plan < len(plans) and (not heap or plans[next_plan].start_ms - _LEAD_MS <= heap[0][0]):
            plan = plans[next_plan]
            for seq, (ms, event) in enumerate(maker.materialise(plan)):
                heapq.heappush(heap, (ms, plan.index, seq, event))
            next_plan += 1
        if not heap:
            continue
        _, _, _, event = heapq.heappop(heap)
        event["event_id"] = f"{prefix}{counter}"
        counter += 1
        yield event
    logger.debug("generated %d events for %s", counter, config.run_tag)

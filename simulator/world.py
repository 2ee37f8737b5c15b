"""The simulated world: a catalog of VOD titles and live channels, and users grouped in accounts.

Everything here is a pure function of the seed and the sizes (not of the simulated time range), so two runs
with the same seed describe the same titles and people. The world carries a latent taste structure: every
user truly prefers a couple of genres and picks titles mostly from them, with popularity skewed towards a
few hits. Titles' descriptions, cast and directors are drawn from per-genre vocabularies so that text
similarity (TF-IDF) and collaborative filtering both have something true to find.
"""

from __future__ import annotations

import logging
import random
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate
from typing import Any

from warehouse_models.events import (
    AGE_GROUPS,
    DEVICE_TYPES,
    PLAN_STREAM_LIMITS,
    SCHEMA_VERSION,
    EventType,
    format_timestamp,
)

logger = logging.getLogger(__name__)

GENRE_VOCABULARY: dict[str, dict[str, tuple[str, ...]]] = {
    "drama": {
        "words": ("family", "grief", "secret", "inheritance", "marriage", "betrayal", "redemption", "memory",
                  "hometown", "reunion", "illness", "courtroom", "ambition", "forgiveness", "loss"),
        "settings": ("a fading mill town", "a crowded city hospital", "a coastal village", "a family farm"),
        "title": ("Quiet", "Hours", "Letters", "Harbor", "Promise", "Winter", "Inheritance", "Silence"),
    },
    "comedy": {
        "words": ("wedding", "roommates", "prank", "mishap", "awkward", "neighbors", "road-trip", "bakery",
                  "sitcom", "misunderstanding", "karaoke", "office", "disaster", "sidekick", "blind-date"),
        "settings": ("a chaotic office", "a small-town bakery", "a holiday resort", "a shared apartment"),
        "title": ("Oops", "Party", "Trouble", "Neighbors", "Weekend", "Mess", "Roommates", "Crash"),
    },
    "action": {
        "words": ("heist", "explosion", "chase", "mercenary", "rescue", "convoy", "agent", "hostage",
                  "martial-arts", "revenge", "sniper", "bunker", "showdown", "smuggler", "commando"),
        "settings": ("a burning skyscraper", "a border checkpoint", "a cargo ship", "a desert highway"),
        "title": ("Strike", "Fury", "Impact", "Vendetta", "Extraction", "Blackout", "Siege", "Protocol"),
    },
    "thriller": {
        "words": ("detective", "murder", "conspiracy", "witness", "stalker", "alibi", "kidnapping",
                  "surveillance", "informant", "cover-up", "suspect", "ransom", "corruption", "cipher", "clue"),
        "settings": ("a rain-soaked city", "a remote motel", "a police precinct", "an isolated lake house"),
        "title": ("Shadow", "Witness", "Alibi", "Trace", "Motive", "Cipher", "Fracture", "Vanishing"),
    },
    "scifi": {
        "words": ("spaceship", "android", "wormhole", "colony", "alien", "time-travel", "starship", "galaxy",
                  "cyborg", "terraforming", "quantum", "orbit", "clone", "asteroid", "dystopia"),
        "settings": ("a dying space station", "a colony on Mars", "a neon megacity", "a generation ship"),
        "title": ("Orbit", "Nebula", "Horizon", "Singularity", "Exodus", "Eclipse", "Vector", "Andromeda"),
    },
    "documentary": {
        "words": ("wildlife", "history", "archive", "climate", "expedition", "interview", "ocean",
                  "investigation", "ancient", "scientists", "footage", "migration", "ecosystem", "empire",
                  "biography"),
        "settings": ("the Arctic tundra", "the Amazon basin", "the deep ocean", "the ruins of an empire"),
        "title": ("Planet", "Untold", "Origins", "Frontier", "Wild", "Chronicles", "Inside", "Deep"),
    },
    "animation": {
        "words": ("talking-animals", "magic", "adventure", "friendship", "dragon", "kingdom", "robot",
                  "forest", "princess", "cartoon", "musical", "quest", "treasure", "puppy", "wizard"),
        "settings": ("an enchanted forest", "a candy kingdom", "a toy workshop", "a floating island"),
        "title": ("Sparkle", "Whiskers", "Dragonling", "Kingdom", "Tiny", "Magic", "Adventure", "Bubbles"),
    },
    "horror": {
        "words": ("haunted", "demon", "curse", "possession", "ghost", "cabin", "ritual", "zombie", "slasher",
                  "nightmare", "asylum", "creature", "seance", "blood", "exorcism"),
        "settings": ("an abandoned asylum", "a cabin in the woods", "a cursed farmhouse", "a flooded crypt"),
        "title": ("Hollow", "Curse", "Dread", "Howl", "Possessed", "Crypt", "Nightfall", "Ritual"),
    },
    "romance": {
        "words": ("love", "heartbreak", "wedding", "soulmate", "first-date", "summer", "letters",
                  "long-distance", "proposal", "chemistry", "flirting", "kiss", "ex-lover", "destiny", "paris"),
        "settings": ("a seaside town in summer", "a bookshop in Paris", "a vineyard", "a snowed-in chalet"),
        "title": ("Heart", "Forever", "Summer", "Kiss", "Always", "Serenade", "Sweetheart", "Moonlight"),
    },
    "sports": {
        "words": ("championship", "stadium", "league", "derby", "coach", "striker", "final", "tournament",
                  "season", "playoffs", "goal", "athlete", "match", "transfer", "trophy"),
        "settings": ("a packed stadium", "the locker room", "the training ground", "a legendary arena"),
        "title": ("Matchday", "Final", "League", "Derby", "Victory", "Arena", "Champions", "Kickoff"),
    },
    "news": {
        "words": ("headlines", "election", "markets", "weather", "breaking", "parliament", "economy",
                  "correspondent", "briefing", "analysis", "policy", "summit", "report", "bulletin", "debate"),
        "settings": ("the newsroom", "the capital", "the trading floor", "the campaign trail"),
        "title": ("Today", "Live", "Briefing", "Report", "Update", "Headlines", "Tonight", "Morning"),
    },
    "music": {
        "words": ("concert", "band", "album", "festival", "tour", "guitar", "chart", "singer", "backstage",
                  "remix", "orchestra", "hip-hop", "jazz", "encore", "playlist"),
        "settings": ("a sold-out arena", "a jazz club", "a summer festival", "a recording studio"),
        "title": ("Encore", "Amplified", "Rhythm", "Backstage", "Hits", "Unplugged", "Groove", "Anthem"),
    },
}
"""Per-genre words that go into titles and descriptions; the text signal for content similarity."""

VOD_GENRES: tuple[str, ...] = ("drama", "comedy", "action", "thriller", "scifi", "documentary", "animation",
                               "horror", "romance")
LIVE_GENRES: tuple[str, ...] = ("sports", "news", "music", "documentary", "animation", "comedy")
ALL_GENRES: tuple[str, ...] = tuple(GENRE_VOCABULARY)

_GENRE_RATINGS: dict[str, tuple[str, ...]] = {
    "animation": ("G", "TV-Y", "PG"),
    "horror": ("R", "TV-MA"),
    "documentary": ("PG", "TV-PG", "TV-14"),
    "news": ("TV-PG",),
    "sports": ("TV-PG", "TV-14"),
    "music": ("TV-PG", "TV-14"),
}
_DEFAULT_RATINGS: tuple[str, ...] = ("PG", "PG-13", "R", "TV-14", "TV-MA")
_LANGUAGES: tuple[tuple[str, float], ...] = (("en", 0.62), ("es", 0.1), ("fr", 0.07), ("de", 0.06),
                                             ("ja", 0.05), ("ko", 0.05), ("it", 0.05))
COUNTRIES: tuple[tuple[str, float], ...] = (
    ("US", 0.3), ("GB", 0.1), ("DE", 0.08), ("FR", 0.07), ("ES", 0.05), ("IT", 0.05), ("NL", 0.03),
    ("SE", 0.02), ("PL", 0.03), ("BR", 0.08), ("MX", 0.05), ("CA", 0.05), ("AU", 0.03), ("IN", 0.04),
    ("JP", 0.02),
)
"""Home countries and their share of users."""

PLANS: tuple[tuple[str, float], ...] = (("basic", 0.35), ("standard", 0.4), ("premium", 0.25))
_DEVICE_WEIGHTS: tuple[float, ...] = (0.34, 0.26, 0.1, 0.15, 0.05, 0.1)
_FIRST_NAMES = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam",
                "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Yara",
                "Zane", "Aiko", "Bruno", "Carmen", "Dmitri", "Emma", "Felix", "Hana", "Ivan", "Julia", "Kofi")
_LAST_NAMES = ("Adler", "Brooks", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hughes", "Ito", "Jensen",
               "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Quintero", "Rossi", "Silva",
               "Tanaka", "Umarov", "Varga", "Weber", "Xu", "Young", "Zimmer", "Novak", "Haddad", "Singh", "Kim")
_TEMPLATES = (
    "A {w1} story set in {setting}, where {w2} and {w3} collide.",
    "In {setting}, a tale of {w1}, {w2} and {w3} unfolds.",
    "When {w1} meets {w2}, nothing in {setting} stays the same.",
    "Expect {w1}, {w2} and plenty of {w3}.",
    "{W1}, {w2} and {w3} take centre stage in {setting}.",
)


@dataclass(frozen=True, slots=True)
class Content:
    """A VOD title or a live channel."""

    content_id: str
    title: str
    is_live: bool
    genre_primary: str
    genre_secondary: str | None
    duration_minutes: int | None
    """Running time of a VOD title; None for a live channel."""
    release_date: str
    language: str
    age_rating: str
    cast: tuple[str, ...]
    director: str
    description: str
    popularity: float
    """Relative weight of being picked, skewed (a few hits, a long tail)."""


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    device_type: str
    app_version: str


@dataclass(frozen=True, slots=True)
class User:
    """A profile within an account, with its true (latent) favourite genres and what it states."""

    user_id: str
    account_id: str
    name: str
    age_group: str
    country: str
    favourite_genres: tuple[str, ...]
    """The latent taste: genres this user truly picks from most of the time."""
    stated_preferences: tuple[str, ...]
    """What the profile says it likes (mostly, not always, the favourite genres)."""
    device: Device
    """The device this profile usually watches on."""
    join_date: str


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    plan: str
    max_streams: int
    country: str
    devices: tuple[Device, ...]
    user_ids: tuple[str, ...]
    is_sharer: bool
    """The password is shared beyond the household: it will run more streams than the plan allows."""
    guest_devices: tuple[Device, ...]
    """Devices outside the household (only for sharers), used for the over-limit streams."""


@dataclass(slots=True)
class World:
    """The whole simulated population and catalog, with pickers that follow the taste structure."""

    titles: list[Content]
    channels: list[Content]
    accounts: list[Account]
    users: list[User]
    _by_genre: dict[str, tuple[list[Content], list[float]]] = field(default_factory=dict)
    _all_vod: tuple[list[Content], list[float]] = field(default_factory=lambda: ([], []))

    def __post_init__(self) -> None:
        for genre in ALL_GENRES:
            items = [c for c in self.titles if genre in (c.genre_primary, c.genre_secondary)]
            self._by_genre[genre] = (items, list(accumulate(c.popularity for c in items)))
        self._all_vod = (self.titles, list(accumulate(c.popularity for c in self.titles)))

    @property
    def content(self) -> list[Content]:
        return self.titles + self.channels

    @property
    def users_by_id(self) -> dict[str, User]:
        return {u.user_id: u for u in self.users}

    @property
    def accounts_by_id(self) -> dict[str, Account]:
        return {a.account_id: a for a in self.accounts}

    def pick_title(self, user: User, rng: random.Random, *, taste_share: float = 0.8) -> Content:
        """A VOD title for this user: from a favourite genre with probability ``taste_share``, by popularity."""
        items, cum = self._all_vod
        if rng.random() < taste_share:
            genre_items, genre_cum = self._by_genre.get(rng.choice(user.favourite_genres), ([], []))
            if genre_items:
                items, cum = genre_items, genre_cum
        return items[bisect_left(cum, rng.random() * cum[-1])]

    def pick_channel(self, user: User, rng: random.Random) -> Content:
        """A live channel, preferring ones in the user's favourite genres."""
        liked = [c for c in self.channels if c.genre_primary in user.favourite_genres]
        pool = liked if liked and rng.random() < 0.7 else self.channels
        return rng.choices(pool, weights=[c.popularity for c in pool])[0]


def _weighted(rng: random.Random, pairs: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _description(rng: random.Random, primary: str, secondary: str | None) -> str:
    vocab = GENRE_VOCABULARY[primary]
    sentences = []
    for genre in (primary, primary, secondary or primary):
        words = rng.sample(GENRE_VOCABULARY[genre]["words"], 3)
        template = rng.choice(_TEMPLATES)
        sentences.append(template.format(w1=words[0], W1=words[0].capitalize(), w2=words[1], w3=words[2],
                                         setting=rng.choice(GENRE_VOCABULARY[genre]["settings"])))
    sentences.append(f"Keywords: {', '.join(rng.sample(vocab['words'], 4))}.")
    return " ".join(sentences)


def _people(rng: random.Random, count: int) -> list[str]:
    names = {f"{a} {b}" for a in _FIRST_NAMES for b in _LAST_NAMES}
    return rng.sample(sorted(names), count)


def _make_content(rng: random.Random, *, titles: int, channels: int) -> tuple[list[Content], list[Content]]:
    people = _people(rng, 12 * len(ALL_GENRES) + 4 * len(ALL_GENRES))
    # Each genre has its own pool of actors and directors, so cast and director carry the genre signal too.
    actors = {g: people[i * 12:(i + 1) * 12] for i, g in enumerate(ALL_GENRES)}
    base = 12 * len(ALL_GENRES)
    directors = {g: people[base + i * 4: base + (i + 1) * 4] for i, g in enumerate(ALL_GENRES)}
    ranks = list(range(1, titles + 1))
    rng.shuffle(ranks)
    vod: list[Content] = []
    for i in range(titles):
        primary = VOD_GENRES[i % len(VOD_GENRES)] if i < len(VOD_GENRES) else rng.choice(VOD_GENRES)
        secondary = rng.choice([g for g in VOD_GENRES if g != primary]) if rng.random() < 0.6 else None
        words = GENRE_VOCABULARY[primary]["title"]
        title = f"{rng.choice(('The ', '', '', 'A '))}{rng.choice(words)} {rng.choice(words)}".strip()
        if rng.random() < 0.25:
            title += f" {rng.randint(2, 4)}"
        is_series_length = rng.random() < 0.45
        duration = rng.randint(22, 60) if is_series_length else rng.randint(80, 165)
        cast_pool = actors[primary] + (actors[secondary][:4] if secondary else [])
        release = date(1985, 1, 1) + timedelta(days=rng.randint(0, 40 * 365))
        vod.append(Content(
            content_id=f"vod-{i:05d}", title=title, is_live=False, genre_primary=primary,
            genre_secondary=secondary, duration_minutes=duration, release_date=release.isoformat(),
            language=_weighted(rng, _LANGUAGES),
            age_rating=rng.choice(_GENRE_RATINGS.get(primary, _DEFAULT_RATINGS)),
            cast=tuple(rng.sample(cast_pool, rng.randint(2, 5))), director=rng.choice(directors[primary]),
            description=_description(rng, primary, secondary),
            popularity=1.0 / ranks[i] ** 0.9,
        ))
    live: list[Content] = []
    for i in range(channels):
        primary = LIVE_GENRES[i % len(LIVE_GENRES)]
        words = GENRE_VOCABULARY[primary]["title"]
        live.append(Content(
            content_id=f"live-{i:03d}", title=f"{rng.choice(words)} {primary.capitalize()} {i + 1}",
            is_live=True, genre_primary=primary, genre_secondary=None, duration_minutes=None,
            release_date=(date(2015, 1, 1) + timedelta(days=rng.randint(0, 3000))).isoformat(),
            language=_weighted(rng, _LANGUAGES), age_rating=rng.choice(_GENRE_RATINGS.get(primary, _DEFAULT_RATINGS)),
            cast=tuple(rng.sample(actors[primary], 2)), director=rng.choice(directors[primary]),
            description=_description(rng, primary, None), popularity=1.0 / (1 + i) ** 0.7,
        ))
    return vod, live


def _make_people(rng: random.Random, *, users: int, sharer_share: float) -> tuple[list[Account], list[User]]:
    accounts: list[Account] = []
    people: list[User] = []
    account_index = 0
    while len(people) < users:
        account_id = f"acct-{account_index:06d}"
        plan = _weighted(rng, PLANS)
        country = _weighted(rng, COUNTRIES)
        n_devices = rng.randint(1, 2 if plan == "basic" else 4)
        devices = tuple(
            Device(f"dev-{account_index:06d}-{j}", rng.choices(DEVICE_TYPES, weights=_DEVICE_WEIGHTS)[0],
                   f"5.{rng.randint(0, 9)}.{rng.randint(0, 20)}")
            for j in range(n_devices)
        )
        profiles = min(users - len(people), rng.randint(1, {"basic": 2, "standard": 3, "premium": 5}[plan]))
        ids: list[str] = []
        for p in range(profiles):
            user_id = f"user-{account_index:06d}-{p}"
            favourites = tuple(rng.sample(ALL_GENRES if rng.random() < 0.3 else VOD_GENRES, 2))
            stated = list(favourites)
            if rng.random() < 0.3:
                stated[rng.randrange(2)] = rng.choice(ALL_GENRES)
            joined = date(2016, 1, 1) + timedelta(days=rng.randint(0, 3500))
            people.append(User(
                user_id=user_id, account_id=account_id,
                name=f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
                age_group=rng.choices(AGE_GROUPS, weights=(0.06, 0.18, 0.26, 0.22, 0.16, 0.12))[0],
                country=country, favourite_genres=favourites, stated_preferences=tuple(dict.fromkeys(stated)),
                device=rng.choice(devices), join_date=joined.isoformat(),
            ))
            ids.append(user_id)
        accounts.append(Account(account_id, plan, PLAN_STREAM_LIMITS[plan], country, devices, tuple(ids),
                                False, ()))
        account_index += 1
    # Sharers: a few basic/standard accounts whose password circulates (at least one when sharing is on).
    candidates = [i for i, a in enumerate(accounts) if a.plan != "premium"] or list(range(len(accounts)))
    n_sharers = min(len(candidates), max(1, round(sharer_share * len(accounts)))) if sharer_share > 0 else 0
    for i in sorted(rng.sample(candidates, n_sharers)):
        a = accounts[i]
        guests = tuple(
            Device(f"dev-{a.account_id[5:]}-g{j}", rng.choices(DEVICE_TYPES, weights=_DEVICE_WEIGHTS)[0],
                   f"5.{rng.randint(0, 9)}.{rng.randint(0, 20)}")
            for j in range(a.max_streams + 2)
        )
        accounts[i] = Account(a.account_id, a.plan, a.max_streams, a.country, a.devices, a.user_ids, True, guests)
    return accounts, people


def build_world(*, seed: int, users: int, titles: int, channels: int, sharer_share: float = 0.03) -> World:
    """Build the catalog and the population for a seed (pure: same arguments, same world)."""
    if users < 1 or titles < len(VOD_GENRES) or channels < 1:
        raise ValueError(f"need at least 1 user, {len(VOD_GENRES)} titles and 1 channel")
    rng = random.Random(f"reelytics-world:{seed}")
    vod, live = _make_content(rng, titles=titles, channels=channels)
    accounts, people = _make_people(rng, users=users, sharer_share=sharer_share)
    logger.debug("world: %d titles, %d channels, %d accounts, %d users", len(vod), len(live), len(accounts),
                 len(people))
    return World(vod, live, accounts, people)


def content_upsert(content: Content, *, event_id: str, at: datetime) -> dict[str, Any]:
    """The catalog record of one title or channel."""
    return {
        "event_id": event_id,
        "schema_version": SCHEMA_VERSION,
        "event_type": EventType.CONTENT_UPSERT.value,
        "event_timestamp": format_timestamp(at),
        "content_id": content.content_id,
        "content_title": content.title,
        "content_type": "live" if content.is_live else "vod",
        "genre_primary": content.genre_primary,
        "genre_secondary": content.genre_secondary,
        "release_date": content.release_date,
        "duration_minutes": content.duration_minutes,
        "language": content.language,
        "age_rating": content.age_rating,
        "cast_members": list(content.cast),
        "director": content.director,
        "description": content.description,
    }


def user_upsert(user: User, account: Account, *, event_id: str, at: datetime) -> dict[str, Any]:
    """The catalog record of one profile (with its account's plan and stream limit)."""
    return {
        "event_id": event_id,
        "schema_version": SCHEMA_VERSION,
        "event_type": EventType.USER_UPSERT.value,
        "event_timestamp": format_timestamp(at),
        "account_id": account.account_id,
        "user_id": user.user_id,
        "user_name": user.name,
        "age_group": user.age_group,
        "location_country": user.country,
        "subscription_type": account.plan,
        "max_streams": account.max_streams,
        "join_date": user.join_date,
        "preferences": list(user.stated_preferences),
    }

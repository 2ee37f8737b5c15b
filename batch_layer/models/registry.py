"""Model versions on disk: one folder per trained model, a pointer to the published one, and its history.

``<models_dir>/<version>/manifest.json`` says what the version is (parameters, data range, sizes, metrics of
every recommender on its held-out period, the gate's decision) and ``arrays.npz`` holds what publishing and
serving need (factors, top titles per user, similar titles, the content index, popularity). ``current`` names
the published version and ``history.jsonl`` records every publication, promotion and rollback, so
``reelytics models rollback`` knows what was published before.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
CURRENT = "current"
HISTORY = "history.jsonl"


class RegistryError(RuntimeError):
    """A registry operation that cannot be done; the message says why and what to do."""


def new_version(at: datetime) -> str:
    return f"m{at.astimezone(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class ModelVersion:
    version: str
    manifest: dict[str, Any]
    path: Path

    def arrays(self) -> dict[str, np.ndarray]:
        with np.load(self.path / ARRAYS, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        return dict(self.manifest.get("metrics", {}))


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, version: str, manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> ModelVersion:
        """Write a version's folder (arrays first, manifest last: a folder without a manifest is unfinished)."""
        folder = self.root / version
        folder.mkdir(parents=True, exist_ok=False)
        np.savez(folder / ARRAYS, **arrays)  # type: ignore[arg-type]
        _write_json(folder / MANIFEST, {"version": version, **manifest})
        return self.get(version)

    def get(self, version: str) -> ModelVersion:
        path = self.root / version
        manifest = path / MANIFEST
        if not manifest.is_file():
            known = ", ".join(v.version for v in self.versions()[-5:]) or "none yet"
            raise RegistryError(f"no model version {version!r} under {self.root} (newest: {known}); "
                                "`reelytics models list` shows them all")
        return ModelVersion(version, json.loads(manifest.read_text()), path)

    def versions(self) -> list[ModelVersion]:
        """Every finished version, oldest first."""
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if (p / MANIFEST).is_file()]
        return [self.get(v) for v in sorted(found)]

    def current(self) -> ModelVersion | None:
        pointer = self.root / CURRENT
        if not pointer.is_file():
            return None
        return self.get(pointer.read_text().strip())

    def set_current(self, version: str, *, action: str, note: str = "") -> None:
        """Point ``current`` at a version and record why (``published``, ``promoted``, ``rolled_back``)."""
        self.get(version)
        current = self.current()
        # Publishing the current version again (a re-push) keeps what it replaced, so rollback still goes back.
        previous = self.previous_published() if current is not None and current.version == version else (
            current.version if current is not None else None)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{CURRENT}.{os.getpid()}"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.root / CURRENT)
        with (self.root / HISTORY).open("a") as history:
            history.write(json.dumps({"at": datetime.now(timezone.utc).isoformat(), "action": action,
                                      "version": version, "previous": previous,
                                      "note": note}) + "\n")

    def history(self) -> list[dict[str, Any]]:
        path = self.root / HISTORY
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def previous_published(self) -> str | None:
        """What a rollback returns to: the version that was current when the current one was published or
        promoted (rolling back twice goes further back, not forth)."""
        current = self.current()
        if current is None:
            return None
        for entry in reversed(self.history()):
            if entry.get("version") == current.version and entry.get("action") in ("published", "promoted"):
                return entry.get("previous")
        return None

    def update_manifest(self, version: str, **fields: Any) -> None:
        model = self.get(version)
        _write_json(model.path / MANIFEST, {**model.manifest, **fields})


def _write_json(path: Path, value: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)

"""Content similarity: TF-IDF over each title's text in ``dim_content`` (scikit-learn).

A title's document is its title, description, genres, cast and director. People's names become one token each
(``Ada_Lovelace``) so a shared actor is one shared term rather than two common first names; genres are written
twice, as they say more than any one description word. Rows are L2-normalised, so a dot product is the cosine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from warehouse_models.recommendations import TOKEN_PATTERN

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import TfidfVectorizer

_NON_WORD = re.compile(r"[^0-9A-Za-z]+")


def _person(name: str) -> str:
    return _NON_WORD.sub("_", name.strip()).strip("_")


def document(row: Mapping[str, Any]) -> str:
    """One title's text for TF-IDF (missing fields are skipped)."""
    genres = [g for g in (row.get("genre_primary"), row.get("genre_secondary")) if g]
    people = [_person(p) for p in (row.get("cast_members") or []) if p]
    if row.get("director"):
        people.append(_person(str(row["director"])))
    parts = [row.get("content_title") or "", row.get("description") or "", *genres, *genres, *people]
    return " ".join(str(p) for p in parts if p)


@dataclass(frozen=True)
class ContentIndex:
    """TF-IDF rows of the catalog, aligned with ``ids``."""

    ids: np.ndarray
    matrix: csr_matrix
    vectorizer: TfidfVectorizer

    @classmethod
    def build(cls, rows: Sequence[Mapping[str, Any]]) -> ContentIndex:
        from sklearn.feature_extraction.text import TfidfVectorizer

        if not rows:
            raise ValueError("no titles to index: dim_content is empty")
        vectorizer = TfidfVectorizer(lowercase=True, token_pattern=TOKEN_PATTERN, sublinear_tf=True,
                                     min_df=1, dtype=np.float32)
        matrix = vectorizer.fit_transform([document(r) for r in rows]).tocsr()
        return cls(np.asarray([str(r["content_id"]) for r in rows], dtype=object), matrix, vectorizer)

    def index(self) -> dict[str, int]:
        return {str(c): i for i, c in enumerate(self.ids)}

    def text_vector(self, text: str) -> csr_matrix:
        """A free text (a search query, stated genres) in the same space (L2-normalised; zero if no term is known)."""
        return self.vectorizer.transform([text]).tocsr()

    def profiles(self, rows: Sequence[Iterable[tuple[int, float]]]) -> csr_matrix:
        """Per entry, the weighted sum of the listed titles' rows, L2-normalised: a taste in content space."""
        from scipy.sparse import csr_matrix as csr
        from sklearn.preprocessing import normalize

        data: list[float] = []
        cols: list[int] = []
        indptr = [0]
        for entry in rows:
            for col, weight in entry:
                cols.append(col)
                data.append(weight)
            indptr.append(len(cols))
        pick = csr((np.asarray(data, dtype=np.float32), np.asarray(cols, dtype=np.int64), np.asarray(indptr)),
                   shape=(len(rows), len(self.ids)))
        return normalize(pick @ self.matrix).tocsr()

    def scores(self, profiles: csr_matrix) -> np.ndarray:
        """Cosine of each profile with every title: a dense (profiles x titles) float32 array.

        Computed as sparse titles x dense profiles: the product is dense anyway (a taste shares terms with most
        titles), and a sparse x sparse product with a dense result costs many times more."""
        dense = np.asarray(profiles.toarray(), dtype=np.float32)
        return np.ascontiguousarray(np.asarray(self.matrix @ dense.T, dtype=np.float32).T)

    def similar(self, k: int, *, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Each title's ``k`` most similar other titles: (indices, cosines), both titles x k, best first."""
        n = len(self.ids)
        k = min(k, max(n - 1, 0))
        top = np.zeros((n, k), dtype=np.int64)
        sims = np.zeros((n, k), dtype=np.float32)
        transposed = self.matrix.T.tocsc()
        for start in range(0, n, chunk):
            block = np.asarray((self.matrix[start:start + chunk] @ transposed).toarray(), dtype=np.float32)
            rows = np.arange(block.shape[0])
            block[rows, rows + start] = -np.inf
            top[start:start + chunk], sims[start:start + chunk] = top_k(block, k)
        return top, sims


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the indices and values of the ``k`` largest scores, best first (ties by lower index)."""
    if k <= 0 or scores.shape[1] == 0:
        return (np.zeros((scores.shape[0], 0), dtype=np.int64), np.zeros((scores.shape[0], 0), dtype=scores.dtype))
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -values), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(scores, idx, axis=1)

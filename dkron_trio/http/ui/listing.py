"""The jobs list page's query: filters, sort and page from the URL, as a store `JobQuery`.

The page never answers 400: a value it cannot use falls back to its default and is named in
``problems`` so the page can say what it ignored. Paging is server-side (``_start``/``_end``
of the store query), so a page costs the same with 100 or 100,000 jobs stored.
"""

from collections.abc import Mapping
from urllib.parse import urlencode

import attrs

from dkron_trio.job import JobStatus
from dkron_trio.store.base import JobQuery, SortOrder

PER_PAGE_CHOICES = (25, 50, 100, 200)
DEFAULT_PER_PAGE = 50

SORT_FIELDS = (
    "name",
    "displayname",
    "schedule",
    "status",
    "next",
    "last_success",
    "last_error",
    "success_count",
    "error_count",
    "created_at",
)
"""Sortable from the page: the store's indexed job columns, so every sort stays fast."""

UNTRIGGERED = "untriggered"
STATUS_CHOICES = tuple(UNTRIGGERED if s is JobStatus.UNTRIGGERED else s.value for s in JobStatus)


@attrs.frozen(kw_only=True)
class ListParams:
    """What the jobs list shows; `to_args` gives it back as URL parameters."""

    q: str = ""
    status: str = ""
    disabled: str = ""
    """"" for any, "true" for disabled jobs only, "false" for enabled ones only."""
    meta: str = ""
    """Metadata filter as typed: ``key=value`` pairs separated by commas."""
    tags: str = ""
    """Tag filter as typed, like ``meta`` (a job matches when its tags hold every pair)."""
    sort: str = "name"
    order: SortOrder = SortOrder.ASC
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    problems: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "ListParams":
        problems: list[str] = []
        status = args.get("status", "")
        if status and status not in STATUS_CHOICES:
            problems.append(f"unknown status {status!r} ignored")
            status = ""
        disabled = args.get("disabled", "")
        if disabled not in ("", "true", "false"):
            problems.append(f"disabled must be true or false, {disabled!r} ignored")
            disabled = ""
        meta = args.get("meta", "").strip()
        _, meta_problems = parse_metadata(meta)
        problems += meta_problems
        tags = args.get("tags", "").strip()
        problems += parse_metadata(tags, "tag")[1]
        sort = args.get("sort", "name")
        if sort not in SORT_FIELDS:
            problems.append(f"cannot sort by {sort!r}: sorted by name")
            sort = "name"
        order = SortOrder.DESC if args.get("order", "asc").lower() == "desc" else SortOrder.ASC
        page = _positive(args.get("page"), 1, "page", problems)
        per_page = _positive(args.get("per_page"), DEFAULT_PER_PAGE, "per_page", problems)
        if per_page not in PER_PAGE_CHOICES:
            per_page = min(PER_PAGE_CHOICES, key=lambda c: abs(c - per_page))
        return cls(
            q=args.get("q", "").strip(),
            status=status,
            disabled=disabled,
            meta=meta,
            tags=tags,
            sort=sort,
            order=order,
            page=page,
            per_page=per_page,
            problems=tuple(problems),
        )

    @property
    def start(self) -> int:
        return (self.page - 1) * self.per_page

    def job_query(self) -> JobQuery:
        metadata, _ = parse_metadata(self.meta)
        status = None
        if self.status:
            status = JobStatus.UNTRIGGERED if self.status == UNTRIGGERED else JobStatus(self.status)
        return JobQuery(
            metadata=metadata,
            tags=parse_metadata(self.tags, "tag")[0],
            q=self.q,
            status=status,
            disabled=None if not self.disabled else self.disabled == "true",
            sort=self.sort,
            order=self.order,
            start=self.start,
            end=self.start + self.per_page,
        )

    def to_args(self, **changes: object) -> str:
        """URL query string of these parameters with ``changes``; defaults are left out."""
        values: dict[str, object] = {
            "q": self.q,
            "status": self.status,
            "disabled": self.disabled,
            "meta": self.meta,
            "tags": self.tags,
            "sort": self.sort,
            "order": self.order.value,
            "page": self.page,
            "per_page": self.per_page,
        }
        values.update(changes)
        defaults = {"sort": "name", "order": "asc", "page": 1, "per_page": DEFAULT_PER_PAGE}
        kept = {k: v for k, v in values.items() if v not in ("", None) and defaults.get(k) != v}
        return urlencode(kept)

    def sort_args(self, field: str) -> str:
        """Query string sorting by ``field``: ascending first, flipped when already sorted."""
        flip = self.sort == field and self.order is SortOrder.ASC
        return self.to_args(sort=field, order="desc" if flip else "asc", page=1)


def parse_metadata(text: str, what: str = "metadata") -> tuple[dict[str, str], list[str]]:
    """``k=v, k2=v2`` as a dict, and a problem for each piece without ``=`` or key."""
    pairs: dict[str, str] = {}
    problems = []
    for raw in text.split(","):
        piece = raw.strip()
        if not piece:
            continue
        key, sep, value = piece.partition("=")
        if not sep or not key.strip():
            problems.append(f"{what} filter {piece!r} ignored: write key=value")
            continue
        pairs[key.strip()] = value.strip()
    return pairs, problems


def _positive(raw: str | None, default: int, name: str, problems: list[str]) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        problems.append(f"{name} must be a positive whole number, {raw!r} ignored")
        return default
    return value


@attrs.frozen
class Pager:
    """Page numbers for a list of ``total`` items shown ``per_page`` at a time."""

    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def past_end(self) -> bool:
        """The page asked for lies beyond the last one (the list may have shrunk)."""
        return self.page > self.pages

    @property
    def first_index(self) -> int:
        """1-based number of the page's first item (0 when the page is empty)."""
        return 0 if self.total == 0 or self.past_end else (self.page - 1) * self.per_page + 1

    @property
    def last_index(self) -> int:
        return min(self.page * self.per_page, self.total)

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    def window(self, width: int = 2) -> list[int]:
        """Page numbers to link: the first, the last and ``width`` either side of this one."""
        shown = {1, self.pages, *range(self.page - width, self.page + width + 1)}
        return sorted(p for p in shown if 1 <= p <= self.pages)

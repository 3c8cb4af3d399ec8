"""Target-node selection with Dkron's tag rules (dkron-reference.md §E), load-aware.

A job tag is ``"value"`` or ``"value:count"``; a node qualifies when it carries every job tag
with exactly that value. The smallest count among the tags limits how many nodes run the job,
and among qualifying nodes the least busy are chosen (Dkron picks at random; we prefer idle
nodes, then the name, so the choice is deterministic). No job tags means every node.
"""

from collections.abc import Mapping, Sequence

import attrs


@attrs.frozen
class Node:
    """A node as the selector sees it: its tags and how many executions it is running."""

    name: str
    tags: Mapping[str, str] = attrs.field(factory=dict)
    busy: int = 0


@attrs.frozen
class TagRule:
    """One parsed job tag."""

    key: str
    value: str
    count: int | None


class TagError(ValueError):
    """A job tag whose count is not a positive integer."""


def parse_tag(key: str, raw: str) -> TagRule:
    value, sep, count = raw.rpartition(":")
    if not sep:
        return TagRule(key, raw, None)
    if not count.isdigit() or int(count) < 1:
        raise TagError(f"tags.{key}: count {count!r} must be a positive integer")
    return TagRule(key, value, int(count))


def select_targets(job_tags: Mapping[str, str], nodes: Sequence[Node]) -> list[Node]:
    """The nodes that run one attempt of a job with these tags."""
    rules = [parse_tag(k, v) for k, v in sorted(job_tags.items())]
    matching = [n for n in nodes if all(n.tags.get(r.key) == r.value for r in rules)]
    counts = [r.count for r in rules if r.count is not None]
    if not counts:
        return sorted(matching, key=lambda n: n.name)
    ranked = sorted(matching, key=lambda n: (n.busy, n.name))
    return ranked[: min(counts)]

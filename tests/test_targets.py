import pytest

from dkron_trio.targets import Node, TagError, parse_tag, select_targets

NODES = [
    Node("a", {"role": "web", "dc": "x"}, busy=2),
    Node("b", {"role": "web", "dc": "y"}, busy=0),
    Node("c", {"role": "db", "dc": "x"}, busy=1),
]


def names(nodes: list[Node]) -> list[str]:
    return [n.name for n in nodes]


def test_no_tags_selects_every_node() -> None:
    assert names(select_targets({}, NODES)) == ["a", "b", "c"]


def test_all_tags_must_match() -> None:
    assert names(select_targets({"role": "web", "dc": "x"}, NODES)) == ["a"]


def test_count_prefers_least_busy() -> None:
    assert names(select_targets({"role": "web:1"}, NODES)) == ["b"]


def test_smallest_count_wins() -> None:
    assert names(select_targets({"role": "web:2", "dc": "x:1"}, NODES)) == ["a"]


def test_no_match() -> None:
    assert select_targets({"role": "cache"}, NODES) == []


def test_value_may_contain_colon() -> None:
    assert parse_tag("addr", "h:1:2").value == "h:1"


@pytest.mark.parametrize("raw", ["web:0", "web:x", "web:-1"])
def test_bad_count(raw: str) -> None:
    with pytest.raises(TagError, match=r"tags\.role"):
        parse_tag("role", raw)

"""Cluster-wide keyring operations as a pure query: who is asked, resends, the report."""

from dkron_trio.gossip.keyring_query import KeyQuery, key_text
from dkron_trio.gossip.messages import KeyOp, KeyResponse

K1, K2 = b"1" * 16, b"2" * 32
TARGETS = {"a": ("a", 1), "b": ("b", 1), "c": ("c", 1)}


def test_silent_members_are_asked_again_each_interval_and_never_ourselves() -> None:
    q = KeyQuery.start(7, KeyOp.INSTALL, K2, TARGETS, 5, local="a")
    assert [to for to, _ in q.due(0)] == [("b", 1), ("c", 1)]
    assert q.due(4) == []
    q.answer(KeyResponse(7, "b", "", (K1, K2)))
    q.answer(KeyResponse(8, "c", "", (K1,)))  # another query's answer
    assert [to for to, _ in q.due(5)] == [("c", 1)]
    q.answer(KeyResponse(7, "c", "remove: key is not installed", (K1,)))
    assert q.done and q.due(10) == []


def test_report_counts_keys_and_names_refusals_and_silence() -> None:
    q = KeyQuery.start(1, KeyOp.USE, K2, TARGETS, 5, local="a")
    q.answer(KeyResponse(1, "a", "", (K2, K1)))
    q.answer(KeyResponse(1, "b", "use: key is not installed", (K1,)))
    q.answer(KeyResponse(1, "b", "", (K2,)))  # a repeat keeps the first answer
    report = q.report()
    assert report.asked == ("a", "b", "c")
    assert report.answered == ("a",)
    assert report.errors == {"b": "use: key is not installed"}
    assert report.missing == ("c",)
    assert report.keys == {key_text(K1): 2, key_text(K2): 1}
    assert report.primary_keys == {key_text(K2): 1, key_text(K1): 1}
    assert not report.complete

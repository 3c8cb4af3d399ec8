"""Interpreter and file format for Raft transcript tests (tests/raft/testdata/*.txt).

A file is a sequence of blocks separated by blank lines. Each block is optional `#`
comment lines, one command line, a `----` line and the expected output (never blank).
Run with REWRITE_GOLDEN=1 to regenerate the expected outputs.

Commands (ids are node ids; options are key=value):
  add-nodes N [voters=1,2,3] [learners=4] [pre-vote=false] [check-quorum=false]
            [election=10] [heartbeat=1] [inflight=N] [max-msg-size=N] [chunk=N] [keep=N]
  campaign ID | propose ID DATA | propose-conf-change ID add|add-learner|remove NODE
  transfer-leader FROM TO | read-index ID CTX | compact ID
  tick ID [N] | tick-heartbeat ID | tick-election ID | tick-all N
  stabilize [ID...] | process-ready ID... | deliver-msgs ID... [drop=true]
  partition 1,2 3 | isolate ID | heal | crash ID | restart ID
  status ID | raft-log ID | applied ID
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from dkron_trio.raft.errors import RaftError
from dkron_trio.raft.types import ConfChange, ConfChangeType, RaftConfig, Role

from .harness import Cluster, describe_entry

SEPARATOR = "----"


@attrs.frozen
class Block:
    comments: tuple[str, ...]
    command: str
    expected: tuple[str, ...]


def parse(text: str) -> list[Block]:
    blocks: list[Block] = []
    chunks = [c for c in text.split("\n\n") if c.strip()]
    for chunk in chunks:
        lines = chunk.strip("\n").split("\n")
        comments = tuple(line for line in lines if line.startswith("#"))
        rest = [line for line in lines if not line.startswith("#")]
        if not rest:
            raise ValueError(f"block without a command: {chunk!r}")
        command = rest[0]
        expected: tuple[str, ...] = ()
        if len(rest) > 1:
            if rest[1] != SEPARATOR:
                raise ValueError(f"expected {SEPARATOR!r} after {command!r}")
            expected = tuple(rest[2:])
        blocks.append(Block(comments, command, expected))
    return blocks


def render(blocks: list[tuple[Block, list[str]]]) -> str:
    out: list[str] = []
    for block, actual in blocks:
        out.extend(block.comments)
        out.append(block.command)
        out.append(SEPARATOR)
        out.extend(actual)
        out.append("")
    return "\n".join(out)


def _ids(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _flag(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"expected true/false, got {text!r}")
    return text == "true"


_CONFIG_OPTS: dict[str, tuple[str, Callable[[str], object]]] = {
    "pre-vote": ("pre_vote", _flag),
    "check-quorum": ("check_quorum", _flag),
    "election": ("election_ticks", int),
    "heartbeat": ("heartbeat_ticks", int),
    "inflight": ("max_inflight_msgs", int),
    "max-msg-size": ("max_size_per_msg", int),
    "chunk": ("snapshot_chunk_size", int),
    "keep": ("compaction_keep_entries", int),
}

_CONF_TYPES = {
    "add": ConfChangeType.ADD_NODE,
    "add-learner": ConfChangeType.ADD_LEARNER,
    "remove": ConfChangeType.REMOVE_NODE,
}


@attrs.define
class Interpreter:
    cluster: Cluster = attrs.Factory(Cluster)

    def run(self, command: str) -> list[str]:
        words = command.split()
        args = [w for w in words[1:] if "=" not in w]
        opts = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        self.cluster.log = []
        handler = getattr(self, "cmd_" + words[0].replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {words[0]!r}")
        try:
            extra: list[str] | None = handler(args, opts)
        except RaftError as exc:
            extra = [f"error: {type(exc).__name__}: {exc}"]
        out = self.cluster.log + (extra or [])
        return out or ["ok"]

    # -- cluster setup ----------------------------------------------------------------

    def cmd_add_nodes(self, args: list[str], opts: dict[str, str]) -> list[str]:
        fields = {}
        for key, value in opts.items():
            if key in _CONFIG_OPTS:
                name, conv = _CONFIG_OPTS[key]
                fields[name] = conv(value)
        config = RaftConfig(**fields)  # type: ignore[arg-type]
        voters = _ids(opts["voters"]) if "voters" in opts else None
        learners = _ids(opts.get("learners", ""))
        ids = self.cluster.add_nodes(int(args[0]), config, voters, learners)
        return [f"added {','.join(map(str, ids))}"]

    # -- requests -----------------------------------------------------------------------

    def cmd_campaign(self, args: list[str], opts: dict[str, str]) -> None:
        self.cluster.core(int(args[0])).campaign()

    def cmd_propose(self, args: list[str], opts: dict[str, str]) -> list[str]:
        index = self.cluster.core(int(args[0])).propose(args[1].encode())
        return [f"index {index}"]

    def cmd_propose_conf_change(self, args: list[str], opts: dict[str, str]) -> list[str]:
        change = ConfChange(_CONF_TYPES[args[1]], int(args[2]))
        index = self.cluster.core(int(args[0])).propose_conf_change(change)
        return [f"index {index}"]

    def cmd_transfer_leader(self, args: list[str], opts: dict[str, str]) -> None:
        self.cluster.core(int(args[0])).transfer_leader(int(args[1]))

    def cmd_read_index(self, args: list[str], opts: dict[str, str]) -> None:
        self.cluster.core(int(args[0])).read_index(args[1].encode())

    def cmd_compact(self, args: list[str], opts: dict[str, str]) -> list[str]:
        node = self.cluster.nodes[int(args[0])]
        index = node.core.applied
        node.core.compact(index, b"\n".join(node.applied))
        return [f"snapshot at {index}"]

    # -- time and delivery ----------------------------------------------------------------

    def cmd_tick(self, args: list[str], opts: dict[str, str]) -> None:
        self.cluster.tick(int(args[0]), int(args[1]) if len(args) > 1 else 1)

    def cmd_tick_heartbeat(self, args: list[str], opts: dict[str, str]) -> None:
        node = self.cluster.nodes[int(args[0])]
        self.cluster.tick(int(args[0]), node.config.heartbeat_ticks)

    def cmd_tick_election(self, args: list[str], opts: dict[str, str]) -> None:
        """Enough ticks for any randomized timeout in [e, 2e) to fire exactly once."""
        node = self.cluster.nodes[int(args[0])]
        self.cluster.tick(int(args[0]), 2 * node.config.election_ticks - 1)

    def cmd_tick_all(self, args: list[str], opts: dict[str, str]) -> None:
        self.cluster.tick_all(int(args[0]))

    def cmd_stabilize(self, args: list[str], opts: dict[str, str]) -> None:
        self.cluster.stabilize([int(a) for a in args] or None)

    def cmd_process_ready(self, args: list[str], opts: dict[str, str]) -> None:
        for a in args:
            self.cluster.handle_ready(int(a))

    def cmd_deliver_msgs(self, args: list[str], opts: dict[str, str]) -> None:
        drop = _flag(opts.get("drop", "false"))
        for a in args:
            self.cluster.deliver(int(a), drop=drop)

    def cmd_partition(self, args: list[str], opts: dict[str, str]) -> None:
        self.cluster.partition(*(_ids(a) for a in args))

    def cmd_isolate(self, args: list[str], opts: dict[str, str]) -> None:
        self.cluster.isolate(int(args[0]))

    def cmd_heal(self, args: list[str], opts: dict[str, str]) -> None:
        self.cluster.heal()

    def cmd_crash(self, args: list[str], opts: dict[str, str]) -> None:
        self.cluster.crash(int(args[0]))

    def cmd_restart(self, args: list[str], opts: dict[str, str]) -> None:
        self.cluster.restart(int(args[0]))

    # -- inspection -----------------------------------------------------------------------

    def cmd_status(self, args: list[str], opts: dict[str, str]) -> list[str]:
        out = []
        for a in args or map(str, sorted(self.cluster.nodes)):
            st = self.cluster.core(int(a)).status()
            voters = ",".join(map(str, sorted(st.conf_state.voters)))
            learners = ",".join(map(str, sorted(st.conf_state.learners)))
            out.append(
                f"{st.node_id}: {st.role.value} term={st.term} vote={st.vote} "
                f"lead={st.leader_id} commit={st.commit} applied={st.applied} "
                f"last={st.last_index} voters=({voters}) learners=({learners})"
            )
            if st.role is Role.LEADER:
                for peer, pr in sorted(st.progress.items()):
                    out.append(
                        f"  {peer}: {pr.state.value} match={pr.match} next={pr.next}"
                        + (" learner" if pr.is_learner else "")
                    )
        return out

    def cmd_raft_log(self, args: list[str], opts: dict[str, str]) -> list[str]:
        core = self.cluster.core(int(args[0]))
        first = self.cluster.nodes[int(args[0])].storage.first_index()
        entries = core.log_entries(first, core.last_index + 1)
        return [describe_entry(e) for e in entries] or ["(empty)"]

    def cmd_applied(self, args: list[str], opts: dict[str, str]) -> list[str]:
        node = self.cluster.nodes[int(args[0])]
        return [" ".join(d.decode() for d in node.applied) or "(nothing)"]

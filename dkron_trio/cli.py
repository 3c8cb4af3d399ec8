"""The ``dkron-trio`` command: ``agent`` runs a node; the other commands are small tools and
clients of a server's HTTP API (Dkron's command names where Dkron has them)."""

import argparse
import base64
import os
import platform
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from dkron_trio import __version__, backup_cli
from dkron_trio.acl import Role
from dkron_trio.cli_client import ADDRESS_ENV, DEFAULT_ADDRESS, TOKEN_ENV, run_client_command
from dkron_trio.cluster import raft_cli
from dkron_trio.cluster.config import ClusterConfig, ClusterConfigError
from dkron_trio.completion import Shell, completion_script
from dkron_trio.config import AgentConfig, ConfigError, load_config
from dkron_trio.config_keys import KEYS, KeyKind, KeyStatus

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
_KEY_DEST = "key:"


def _add_agent_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per configuration key (config_keys.KEYS), so flags never drift from keys."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="config file (.yml, .yaml, .json or .toml); default: dkron.yml in "
        "/etc/dkron, ~/.dkron or ./config",
    )
    for spec in KEYS.values():
        if spec.flag is None:
            continue
        note = " [not supported yet]" if spec.status is KeyStatus.NOT_SUPPORTED else ""
        help_ = f"{spec.help} (env {spec.env}){note}"
        common: dict[str, Any] = {
            "dest": _KEY_DEST + spec.name,
            "default": argparse.SUPPRESS,
            "help": help_,
        }
        if spec.kind is KeyKind.BOOL:
            parser.add_argument(
                f"--{spec.flag}", nargs="?", const="true", metavar="true|false", **common
            )
        elif spec.kind in {KeyKind.LIST, KeyKind.TAGS}:
            metavar = "KEY=VALUE" if spec.kind is KeyKind.TAGS else "VALUE"
            parser.add_argument(f"--{spec.flag}", action="append", metavar=metavar, **common)
        else:
            parser.add_argument(f"--{spec.flag}", metavar="VALUE", **common)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dkron-trio",
        description="Distributed, fault-tolerant cron service compatible with Dkron.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    agent = commands.add_parser("agent", help="run an agent (a server with --server)")
    _add_agent_flags(agent)
    commands.add_parser("version", help="print the version")
    keygen = commands.add_parser("keygen", help="print a random base64 gossip encryption key")
    keygen.add_argument("--bytes", type=int, choices=(16, 24, 32), default=32)
    completion = commands.add_parser("completion", help="print a shell completion script")
    completion.add_argument("shell", choices=[s.value for s in Shell])

    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument(
        "--address",
        metavar="URL",
        help=f"HTTP address of a server (env {ADDRESS_ENV}, default {DEFAULT_ADDRESS})",
    )
    remote.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"ACL token, when the server runs with ACLs (env {TOKEN_ENV})",
    )
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print the server's JSON")

    commands.add_parser(
        "leave", parents=[remote, output], help="ask the agent at --address to leave the cluster"
    )
    backup = commands.add_parser(
        "backup", parents=[remote], help="save a server's whole state (jobs, executions) to FILE"
    )
    backup.add_argument("file", type=Path, metavar="FILE")
    restore = commands.add_parser(
        "restore",
        help="write a new single server's data dir from a backup FILE (offline; the agent's "
        "flags name the server: --data-dir, --node-name, ...)",
    )
    restore.add_argument("file", type=Path, metavar="FILE")
    _add_agent_flags(restore)
    keyring = commands.add_parser(
        "keyring",
        parents=[remote, output],
        help="list, install, use or remove gossip encryption keys on every member",
    )
    keyring_op = keyring.add_mutually_exclusive_group(required=True)
    keyring_op.add_argument("--list", action="store_true", help="list the installed keys")
    keyring_op.add_argument("--install", metavar="KEY", help="install a key everywhere")
    keyring_op.add_argument("--use", metavar="KEY", help="make an installed key the primary")
    keyring_op.add_argument("--remove", metavar="KEY", help="remove a key everywhere")
    acl = commands.add_parser("acl", help="ACL tokens: bootstrap the first, then manage them")
    acl_commands = acl.add_subparsers(dest="acl_command", required=True, metavar="COMMAND")
    acl_commands.add_parser(
        "bootstrap",
        parents=[remote, output],
        help="create the first admin token (only while none exists) and print it once",
    )
    token = acl_commands.add_parser("token", help="create, list or delete tokens (admin)")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    create = token_commands.add_parser(
        "create", parents=[remote, output], help="create a token and print it once"
    )
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--description", default="", help="whose token this is")
    token_commands.add_parser("list", parents=[remote, output], help="list tokens (no secrets)")
    delete_token = token_commands.add_parser(
        "delete", parents=[remote, output], help="delete a token by id"
    )
    delete_token.add_argument("id")
    jobs = commands.add_parser("jobs", help="manage jobs")
    job_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")
    job_commands.add_parser("list", parents=[remote, output], help="list jobs")
    show = job_commands.add_parser("show", parents=[remote, output], help="show one job")
    show.add_argument("name")
    apply = job_commands.add_parser(
        "apply", parents=[remote, output], help="create or update jobs from a file"
    )
    apply.add_argument(
        "-f",
        "--file",
        required=True,
        help="JSON or YAML file with a job or a list of jobs ('-' = stdin)",
    )
    run = job_commands.add_parser("run", parents=[remote, output], help="run a job now")
    run.add_argument("name")
    run.add_argument(
        "--force", action="store_true", help="run even if a forbid-concurrency run is going"
    )
    toggle = job_commands.add_parser(
        "toggle", parents=[remote, output], help="enable or disable a job"
    )
    toggle.add_argument("name")
    delete = job_commands.add_parser("delete", parents=[remote, output], help="delete a job")
    delete.add_argument("name")
    executions = commands.add_parser(
        "executions", parents=[remote, output], help="list a job's executions"
    )
    executions.add_argument("job")

    raft = commands.add_parser("raft", help="inspect and change the Raft configuration")
    raft_commands = raft.add_subparsers(dest="raft_command", required=True, metavar="COMMAND")
    peers = raft_commands.add_parser("list-peers", help="list Raft peers")
    remove = raft_commands.add_parser("remove-peer", help="remove a server from Raft")
    for sub in (peers, remove):
        sub.add_argument(
            "--rpc-addr",
            default=raft_cli.DEFAULT_RPC_ADDR,
            help=f"a server's RPC address (default {raft_cli.DEFAULT_RPC_ADDR})",
        )
    remove.add_argument("--peer-id", required=True, help="Raft id or node name of the server")
    return parser


def _agent_config(args: argparse.Namespace) -> AgentConfig | None:
    """The agent configuration from flags, env and file; None (reported) when invalid."""
    values = {
        dest[len(_KEY_DEST) :]: value
        for dest, value in vars(args).items()
        if dest.startswith(_KEY_DEST)
    }
    try:
        return load_config(values, os.environ, args.config)
    except ConfigError as exc:
        print(f"dkron-trio {args.command}: {exc}", file=sys.stderr)
        return None


def _restore(args: argparse.Namespace) -> int:
    config = _agent_config(args)
    if config is None:
        return EXIT_USAGE
    try:
        cluster = ClusterConfig.from_agent(config)
    except ClusterConfigError as exc:
        print(f"dkron-trio restore: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from dkron_trio import restore_cli  # noqa: PLC0415  (raft storage loads only when used)

    return restore_cli.restore(args.file, cluster)


def _agent(args: argparse.Namespace) -> int:
    config = _agent_config(args)
    if config is None:
        return EXIT_USAGE
    from dkron_trio.agent import run_agent  # noqa: PLC0415  (the agent loads only when run)

    try:
        run_agent(config)
    except KeyboardInterrupt:
        return 130
    return EXIT_OK


def _version() -> int:
    print(f"Name: dkron-trio\nVersion: {__version__}")
    print(f"Python: {platform.python_version()}\nTrio: {trio.__version__}")
    return EXIT_OK


def _keygen(size: int) -> int:
    print(base64.b64encode(secrets.token_bytes(size)).decode("ascii"))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dkron-trio``; returns the process exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "agent":
        return _agent(args)
    if args.command == "version":
        return _version()
    if args.command == "keygen":
        return _keygen(args.bytes)
    if args.command == "backup":
        return backup_cli.backup(args.address, args.file, args.token)
    if args.command == "restore":
        return _restore(args)
    if args.command == "completion":
        print(completion_script(parser, Shell(args.shell)), end="")
        return EXIT_OK
    if args.command == "raft":
        if args.raft_command == "list-peers":
            return raft_cli.list_peers(args.rpc_addr)
        return raft_cli.remove_peer(args.rpc_addr, args.peer_id)
    return run_client_command(args)

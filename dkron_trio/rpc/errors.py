"""Errors a caller of the RPC layer sees."""


class RpcError(Exception):
    """Base class of every RPC failure."""


class RpcTimeout(RpcError):
    """No reply arrived within the call's timeout; the request may or may not have run."""


class RpcUnavailable(RpcError):
    """The connection broke after the request was written; it may or may not have run."""


class RemoteError(RpcError):
    """The remote handler failed (or no handler serves the kind); the text says why."""

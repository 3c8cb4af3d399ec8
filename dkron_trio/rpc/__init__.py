"""Node-to-node RPC: length-prefixed msgpack frames over Trio streams (DESIGN.md §1).

`framing` is the pure frame codec, `server.RpcServer` the listener on rpc-port and
`peer.Peer` the per-peer sender with a bounded queue and reconnect backoff.
"""

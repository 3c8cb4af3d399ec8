"""Gossip: cluster membership, node tags and leave intents over SWIM (memberlist's flavour,
with Lifeguard), in msgpack datagrams optionally sealed with AES-GCM.

Pure: `swim` (the SwimCore state machine) with `swim_probe`, `swim_suspicion`,
`swim_broadcast`, `swim_nodes` and `swim_types`; `messages` and `codec` (the wire format);
`config` (every default, profiles and checks); `keyring_query` (cluster-wide key operations);
`tags` (the agent's reserved tags).
Shells: `udp.GossipNode` (socket, tick loop, member-event channel), `keyring` (AES-GCM) and
`service.GossipService` (what the agent runs).
"""

"""Fuzz the gossip datagram decoder: random and mutated datagrams must decode or raise
CodecError, nothing else (a quick mutation loop without atheris; run_all.py runs the
coverage-guided `gossip_codec` target of fuzz_targets.py).

    python fuzz/gossip_codec.py                    # until Ctrl-C
    python fuzz/gossip_codec.py --iterations 100000
    python fuzz/gossip_codec.py --seed 42          # replay a run

Mutations start from valid packets of every message kind, SWIM and keyring (flipped,
inserted, deleted and truncated bytes), so the decoder's deeper checks are reached, not
only the msgpack parser.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from fuzz_targets import GOSSIP_CORPUS

from dkron_trio.gossip.codec import CodecError, decode_packet, encode_packet

SEEDS = [encode_packet(p) for p in GOSSIP_CORPUS]


def mutate(rng: random.Random) -> bytes:
    if rng.random() < 0.2:
        return rng.randbytes(rng.randrange(0, 1500))
    data = bytearray(rng.choice(SEEDS))
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(4)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.randbytes(rng.randrange(1, 8))
        elif op == 2 and data:
            del data[pos : pos + rng.randrange(1, 8)]
        else:
            del data[pos:]
    return bytes(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    print(f"seed {seed}", flush=True)
    done = rejected = 0
    began = time.monotonic()
    try:
        while args.iterations is None or done < args.iterations:
            data = mutate(rng)
            try:
                decode_packet(data)
            except CodecError:
                rejected += 1
            except Exception as exc:
                print(f"FAIL after {done} inputs: {type(exc).__name__}: {exc}")
                print(f"input: {data.hex()}")
                print(f"replay: python fuzz/gossip_codec.py --seed {seed}")
                return 1
            done += 1
            if done % 100_000 == 0:
                print(f"{done} inputs, {rejected} rejected", flush=True)
    except KeyboardInterrupt:
        pass
    elapsed = time.monotonic() - began
    print(f"{done} inputs, {rejected} rejected, {done - rejected} decoded in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the fuzz tests share: their budget (from the hypothesis profile) and byte-level mutations of valid files.

The fuzz tests of the safetensors, IDX and image loaders feed each loader
damaged versions of valid files and random bytes, and assert that every input
either loads or raises one of the loader's documented errors, never anything
else. How many cases they run comes from the hypothesis settings profile
registered in conftest.py: "default" (the default tier), "ci" for the large
budgets CI runs (`pytest --hypothesis-profile=ci`) or "quick" for iterating.
"""

from hypothesis import settings
from hypothesis import strategies as st


def fuzz_settings(share=1.0):
    """Settings for one fuzz test: `share` times the profile's max_examples (the profile sets the rest)."""
    return settings(max_examples=max(10, round(settings.default.max_examples * share)))


def mutation_ops(interesting=b"\x00\xff", extra=()):
    """A strategy of one mutation: flip bits, set a byte (often an `interesting` one), truncate, insert,
    delete, or write a 4-byte integer (as image headers store sizes); `extra` strategies add custom ops."""
    return st.one_of(
        st.tuples(st.just("flip"), st.integers(0, 10**6), st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128])),
        st.tuples(st.just("set"), st.integers(0, 10**6),
                  st.sampled_from(interesting) | st.integers(0, 255)),
        st.tuples(st.just("truncate"), st.integers(0, 10**6)),
        st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 16)),
        st.tuples(st.just("int32"), st.integers(0, 10**6), st.sampled_from(["big", "little"]),
                  st.sampled_from([0, 1, 2, 255, 256, 65535, 65536, 2**31 - 1, 2**32 - 1]) | st.integers(0, 2**32 - 1)),
        *extra,
    )


def mutate(data, ops, custom=None):
    """Apply mutation ops (from mutation_ops) to bytes `data`; `custom` maps extra op names to functions
    (bytearray, *args) -> None that change the bytearray in place."""
    data = bytearray(data)
    for op, *args in ops:
        if custom and op in custom:
            custom[op](data, *args)
            continue
        at = args[0] % (len(data) + 1)
        if op == "flip" and at < len(data):
            data[at] ^= args[1]
        elif op == "set" and at < len(data):
            data[at] = args[1]
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = args[1]
        elif op == "delete":
            del data[at : at + args[1]]
        elif op == "int32" and at + 4 <= len(data):
            data[at : at + 4] = args[2].to_bytes(4, args[1])
    return bytes(data)

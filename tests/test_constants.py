"""The architecture constants: Table I as LENET5.md gives it, the RBF prototypes, parameter counts."""

import re

import numpy as np

from lenet_engine import constants
from lenet_engine.architectures import get_architecture


def table_i_from_spec(text):
    """Parse the 'C3 map | S2 maps read' table of LENET5.md into a tuple of tuples."""
    section = text[text.index("### Table I"):]
    rows = {}
    for match in re.finditer(r"^\|\s*(\d+)\s*\|\s*([\d ]+?)\s*\|\s*$", section, re.MULTILINE):
        rows[int(match.group(1))] = tuple(int(v) for v in match.group(2).split())
    return tuple(rows[i] for i in range(len(rows)))


def test_table_i_matches_the_specification(lenet5_md):
    spec = table_i_from_spec(lenet5_md)
    assert len(spec) == 16
    assert constants.TABLE_I == spec


def test_table_i_has_the_papers_counts():
    sizes = [len(row) for row in constants.TABLE_I]
    assert sum(sizes) == 60
    assert sizes.count(3) == 6 and sizes.count(4) == 9 and sizes.count(6) == 1
    assert all(list(row) == sorted(set(row)) for row in constants.TABLE_I)


def test_connection_arrays_encode_table_i():
    conn_start, conn_in = constants.connection_arrays()
    assert conn_start.dtype == conn_in.dtype == np.int64
    rebuilt = tuple(tuple(conn_in[conn_start[o]:conn_start[o + 1]]) for o in range(16))
    assert rebuilt == constants.TABLE_I


def test_rbf_prototypes_are_distinct_bitmaps_far_apart():
    protos = constants.rbf_prototypes()
    assert protos.shape == (10, 84) and protos.dtype == np.float32
    assert set(np.unique(protos)) == {-1.0, 1.0}
    for digit, art in constants.RBF_BITMAPS.items():
        lines = art.strip().splitlines()
        assert len(lines) == 12 and all(len(line) == 7 for line in lines), digit
    hamming = (protos[:, None, :] != protos[None, :, :]).sum(axis=2)
    off_diagonal = hamming[~np.eye(10, dtype=bool)]
    assert off_diagonal.min() >= 12


def test_parameter_counts():
    assert get_architecture("classic").num_parameters == 60000
    assert get_architecture("modern").num_parameters == 61706
    c3 = get_architecture("classic").param_shapes()
    assert np.prod(c3["c3.weight"]) + np.prod(c3["c3.bias"]) == 1516

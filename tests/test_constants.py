"""The architecture constants: Table I as the paper draws it, the RBF prototypes, parameter counts."""

import numpy as np

from lenet_engine import constants
from lenet_engine.architectures import get_architecture

# Table I as the paper draws it: a row per S2 map, a column per C3 map, X where the C3 map
# reads the S2 map. Kept in this grid form, not constants.py's lists, so that the test
# compares two independent transcriptions.
TABLE_I_GRID = """
      0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
  0   X  .  .  .  X  X  X  .  .  X  X  X  X  .  X  X
  1   X  X  .  .  .  X  X  X  .  .  X  X  X  X  .  X
  2   X  X  X  .  .  .  X  X  X  .  .  X  .  X  X  X
  3   .  X  X  X  .  .  X  X  X  X  .  .  X  .  X  X
  4   .  .  X  X  X  .  .  X  X  X  X  .  X  X  .  X
  5   .  .  .  X  X  X  .  .  X  X  X  X  .  X  X  X
"""


def table_i_from_grid(grid):
    """The grid above as constants.TABLE_I holds it: for each C3 map, the S2 maps it reads."""
    rows = [line.split()[1:] for line in grid.strip().splitlines()[1:]]
    return tuple(tuple(s2 for s2, row in enumerate(rows) if row[c3] == "X") for c3 in range(16))


def test_table_i_matches_the_papers_grid():
    assert constants.TABLE_I == table_i_from_grid(TABLE_I_GRID)


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

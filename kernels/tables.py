"""Connection tables in the form the sparse-convolution kernels read: (conn_start, conn_in).

Output map o's kernels are w[conn_start[o]:conn_start[o + 1]], and they read the
input maps conn_in[same range]. The dense convolutions of the Numba and Cython
backends run as sparse ones over full_connection_table; lenet_engine.network
passes modern's C3 to the fused kernel the same way, and
lenet_engine.constants builds Table I with table_arrays.
"""

import functools

import numpy as np


def table_arrays(rows):
    """(conn_start, conn_in), both int64, of the table whose output map o reads the input maps rows[o]."""
    conn_start = np.zeros(len(rows) + 1, dtype=np.int64)
    conn_start[1:] = np.cumsum([len(row) for row in rows])
    conn_in = np.array([c for row in rows for c in row], dtype=np.int64)
    return conn_start, conn_in


@functools.lru_cache(maxsize=16)
def full_connection_table(n_out, n_in):
    """(conn_start, conn_in) of the table in which every output map reads every input map, in order.

    Read-only and cached: the dense kernels ask for it at every call, and making it was a good
    part of a call on a single digit.
    """
    conn_start, conn_in = table_arrays([range(n_in)] * n_out)
    conn_start.flags.writeable = conn_in.flags.writeable = False
    return conn_start, conn_in

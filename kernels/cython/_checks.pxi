# Included (textually) by the kernel modules of the Cython backend, kernels/cython/*.pyx.
# Argument checks the Cython kernels run before any unchecked loop.
#
# The kernels are compiled without bounds checks, so a shape mismatch that
# reached a loop would read or write outside an array. Every `def` kernel
# therefore calls these first, with the GIL held: integer compares, plus one
# pass over a label vector or connection table. A failed check raises
# ValueError naming the kernel and the mismatch. Dtype, dimension count,
# contiguity, writability and None are already refused (ValueError or
# TypeError) by the typed memoryview arguments themselves.

from libc.stdint cimport int64_t


cdef extern from "l5_threads.h":
    int l5_thread_limit() nogil


cdef inline int check_threads(str kernel, int n_threads) except -1:
    # More threads than the limit (l5_threads.h) would make libgomp create them anyway
    # (and abort the process when it cannot): refuse, as the Numba twin does.
    cdef int limit = l5_thread_limit()
    if n_threads < 1 or n_threads > limit:
        raise ValueError(f"{kernel}: n_threads must be between 1 and {limit}, got {n_threads}")
    return 0


cdef inline int check_shape(str kernel, str name, Py_ssize_t* shape, int ndim, tuple want) except -1:
    """`name`'s shape (its memoryview's first `ndim` extents) must equal `want`."""
    cdef int d
    for d in range(ndim):
        # Compared in C; the tuples of the message are only built on a mismatch
        # (a single digit's prediction runs a dozen of these checks).
        if shape[d] != <Py_ssize_t>want[d]:
            got = tuple([shape[i] for i in range(ndim)])
            raise ValueError(f"{kernel}: {name} has shape {got}, expected {want}")
    return 0


cdef inline int check_kernel_fits(str kernel, Py_ssize_t kh, Py_ssize_t kw,
                                  Py_ssize_t h, Py_ssize_t w) except -1:
    """A valid convolution needs a square kernel, at least 1x1, no larger than its input."""
    if kh != kw:
        raise ValueError(f"{kernel}: the kernel must be square, got {kh}x{kw}")
    if kh < 1 or kh > h or kh > w:
        raise ValueError(f"{kernel}: a {kh}x{kw} kernel does not fit a {h}x{w} input")
    return 0


cdef inline int check_labels(str kernel, const int64_t[::1] labels, Py_ssize_t n_batch,
                             Py_ssize_t n_classes) except -1:
    """labels: (n_batch,), every entry a class index in [0, n_classes)."""
    cdef Py_ssize_t n
    if labels.shape[0] != n_batch:
        raise ValueError(f"{kernel}: labels has length {labels.shape[0]}, expected {n_batch}")
    for n in range(n_batch):
        if labels[n] < 0 or labels[n] >= n_classes:
            raise ValueError(f"{kernel}: labels[{n}] = {labels[n]} is not a class index "
                             f"in [0, {n_classes})")
    return 0


cdef inline int check_table(str kernel, const int64_t[::1] conn_start, const int64_t[::1] conn_in,
                            Py_ssize_t n_out, Py_ssize_t n_conn, Py_ssize_t n_in) except -1:
    """A connection table for n_out output maps, n_conn kernels and n_in input maps.

    The kernels of output map o are p in conn_start[o] .. conn_start[o + 1] - 1,
    reading input map conn_in[p] (see constants.connection_arrays).
    """
    cdef Py_ssize_t o, p
    if conn_start.shape[0] != n_out + 1:
        raise ValueError(f"{kernel}: conn_start has length {conn_start.shape[0]}, "
                         f"expected {n_out + 1} (output maps + 1)")
    if conn_in.shape[0] != n_conn:
        raise ValueError(f"{kernel}: conn_in has length {conn_in.shape[0]}, "
                         f"expected {n_conn} (one entry per kernel of w)")
    if conn_start[0] != 0:
        raise ValueError(f"{kernel}: conn_start[0] = {conn_start[0]}, expected 0")
    for o in range(n_out):
        if conn_start[o + 1] < conn_start[o]:
            raise ValueError(f"{kernel}: conn_start decreases at {o + 1} "
                             f"({conn_start[o]} -> {conn_start[o + 1]})")
    if conn_start[n_out] != n_conn:
        raise ValueError(f"{kernel}: conn_start[{n_out}] = {conn_start[n_out]}, "
                         f"expected {n_conn} (the number of kernels in w)")
    for p in range(n_conn):
        if conn_in[p] < 0 or conn_in[p] >= n_in:
            raise ValueError(f"{kernel}: conn_in[{p}] = {conn_in[p]} is not an input map "
                             f"index in [0, {n_in})")
    return 0

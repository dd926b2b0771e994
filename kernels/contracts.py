"""What each kernel's arguments must be, checked before compiled code runs.

The Numba kernels index without bounds checks, so a wrong shape, connection
table or label would read or write past an array (a crash, or silently wrong
numbers). kernels/numba/__init__.py runs `check_call` on every public kernel's
arguments first; the Cython kernels check the same in their signatures and
_checks.pxi, with the same messages.

A contract lists a kernel's arrays in the order they are checked: name (with
! for an output, which must be writable, and ? where None skips it), dtype (f float32, i int64, b int8,
u uint8, uf uint8 or float32) and the shape, each dimension a number, a letter
bound by its first appearance, or an expression of bound letters. Lines
starting with @ are checks beyond shapes: @fits (a kernel K x K no larger than
the H x W input), @table (C3's connection table against the maps bound so
far), @labels (class indices 0..K-1).
"""

import inspect

import numpy as np

DTYPES = {"f": (np.float32,), "i": (np.int64,), "b": (np.int8,), "u": (np.uint8,), "uf": (np.uint8, np.float32)}


CONTRACTS = {
    "conv2d_forward": ["x f N C H W", "w f O C K Kw", "@fits", "b f O", "out! f N O H-K+1 W-K+1"],
    "conv2d_backward": ["x f N C H W", "w f O C K Kw", "@fits", "dout f N O H-K+1 W-K+1", "dx!? f N C H W",
                        "dw! f O C K K", "db! f O"],
    "conv2d_curvature": ["x f N C H W", "w f O C K Kw", "@fits", "hout f N O H-K+1 W-K+1", "hx! f N C H W",
                         "hw! f O C K K", "hb! f O"],
    "sparse_conv2d_forward": ["x f N C H W", "w f P K Kw", "@fits", "b f O", "conn_start i O+1", "conn_in i P",
                              "@table", "out! f N O H-K+1 W-K+1"],
    "sparse_conv2d_backward": ["x f N C H W", "w f P K Kw", "@fits", "dout f N O H-K+1 W-K+1", "conn_start i O+1",
                               "conn_in i P", "@table", "dx!? f N C H W", "dw! f P K K", "db! f O"],
    "sparse_conv2d_curvature": ["x f N C H W", "w f P K Kw", "@fits", "hout f N O H-K+1 W-K+1",
                                "conn_start i O+1", "conn_in i P", "@table", "hx! f N C H W", "hw! f P K K",
                                "hb! f O"],
    "avgpool2x2_forward": ["out! f N C Ho Wo", "x f N C 2*Ho 2*Wo"],
    "avgpool2x2_backward": ["dout f N C Ho Wo", "dx! f N C 2*Ho 2*Wo"],
    "avgpool2x2_curvature": ["hout f N C Ho Wo", "hx! f N C 2*Ho 2*Wo"],
    "subsample_forward": ["out! f N C Ho Wo", "x f N C 2*Ho 2*Wo", "coef f C", "bias f C"],
    "subsample_backward": ["dout f N C Ho Wo", "x f N C 2*Ho 2*Wo", "coef f C", "dx! f N C 2*Ho 2*Wo",
                           "dcoef! f C", "dbias! f C"],
    "subsample_curvature": ["hout f N C Ho Wo", "x f N C 2*Ho 2*Wo", "coef f C", "hx! f N C 2*Ho 2*Wo",
                            "hcoef! f C", "hbias! f C"],
    "linear_forward": ["x f N I", "w f O I", "b f O", "out! f N O"],
    "linear_backward": ["x f N I", "w f O I", "dout f N O", "dx! f N I", "dw! f O I", "db! f O"],
    "linear_curvature": ["x f N I", "w f O I", "hout f N O", "hx! f N I", "hw! f O I", "hb! f O"],
    "tanh_forward": ["x f M", "out! f M"],
    "tanh_backward": ["y f M", "dout f M", "dx! f M"],
    "tanh_curvature": ["y f M", "hout f M", "hx! f M"],
    "rbf_forward": ["x f N D", "centers f K D", "out! f N K"],
    "rbf_backward": ["x f N D", "centers f K D", "dout f N K", "dx! f N D", "dcenters! f K D"],
    "rbf_curvature": ["x f N D", "centers f K D", "hout f N K", "dout f N K", "hx! f N D", "hcenters! f K D"],
    "softmax_xent_forward": ["logits f N K", "labels i N", "@labels", "loss! f N", "probs! f N K"],
    "softmax_xent_backward": ["probs f N K", "labels i N", "@labels", "dlogits! f N K"],
    "softmax_xent_curvature": ["probs f N K", "hlogits! f N K"],
    "map_loss_forward": ["dist f N K", "labels i N", "@labels", "loss! f N"],
    "map_loss_backward": ["dist f N K", "labels i N", "@labels", "ddist! f N K"],
    "map_loss_curvature": ["dist f N K", "hdist! f N K"],
    "softmax_forward": ["scores f N K", "probs! f N K"],
    "distort_forward": ["x f N H W", "matrices f N 2 3", "flow f N 2 H W", "out! f N H W"],
    "lenet5_forward": ["digits uf N 28 28", "out! f N 10"],
    "lenet5_squash": ["v! f M"],
    "lenet5_int8_codes": ["digits u N 28 28", "f6! b N 84"],
    "lenet5_int8_forward": ["digits u N 28 28", "out! f N 10"],
}


def check_call(kernel, names, args, exact_types=True):
    """Raise TypeError (not an array) or ValueError (dtype, layout, shape, read-only output, table,
    labels) naming `kernel` and the argument, unless args (by parameter name) meet the contract.
    exact_types=False leaves dtypes and layouts free (the NumPy reference computes in any float
    type: the tests' finite differences run it in float64)."""
    given = dict(zip(names, args))
    dims = {}
    for entry in _parsed(kernel):
        if callable(entry):
            entry(kernel, given, dims)
            continue
        name, dtypes, shape, output, optional = entry
        a = given[name]
        if a is None and optional:
            continue
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{kernel}: {name} must be a numpy array, got {type(a).__name__}")
        if exact_types and a.dtype.type not in dtypes:
            wanted = " or ".join(np.dtype(t).name for t in dtypes)
            raise ValueError(f"{kernel}: {name} has dtype {a.dtype}, expected {wanted}")
        if exact_types and not a.flags.c_contiguous:
            raise ValueError(f"{kernel}: {name} must be C-contiguous")
        if output and not a.flags.writeable:
            raise ValueError(f"{kernel}: {name} is read-only, and the kernel writes it")
        if a.ndim != len(shape):
            raise ValueError(f"{kernel}: {name} has {a.ndim} dimensions, expected {len(shape)}")
        for d, size in zip(shape, a.shape):
            if type(d) is str and d not in dims:
                dims[d] = size
        want = tuple(d if type(d) is int else dims[d] if type(d) is str else eval(d, _NO_BUILTINS, dims)
                     for d in shape)
        if want != a.shape:
            raise ValueError(f"{kernel}: {name} has shape {a.shape}, expected {want}")


_NO_BUILTINS = {"__builtins__": {}}
_PARSED = {}


def _parsed(kernel):
    """The contract's lines as (name, dtypes, shape, output, optional) tuples and check functions,
    each dimension an int, a letter, or a compiled expression; parsed once per kernel."""
    if kernel not in _PARSED:
        entries = []
        for line in CONTRACTS[kernel]:
            if line.startswith("@"):
                entries.append(_SPECIAL[line])
                continue
            name, dtype, *shape = line.split()
            dims = tuple(int(d) if d.isdigit() else d if d.isidentifier() else compile(d, line, "eval")
                         for d in shape)
            entries.append((name.rstrip("?!"), DTYPES[dtype], dims, "!" in name, name.endswith("?")))
        _PARSED[kernel] = entries
    return _PARSED[kernel]


def _fits(kernel, given, dims):
    k, h, w = dims["K"], dims["H"], dims["W"]
    if dims["Kw"] != k:
        raise ValueError(f"{kernel}: the kernel is {k}x{dims['Kw']}: kernels must be square")
    if not 1 <= k <= min(h, w):
        raise ValueError(f"{kernel}: a {k}x{k} kernel does not fit a {h}x{w} input (1 <= K <= H, W)")


def _table(kernel, given, dims):
    check_table(kernel, given["conn_start"], given["conn_in"], dims["C"])


def check_table(kernel, start, conn_in, n_in):
    """A connection table whose conn_start (int64, one entry per output map and one more) rises from
    0 to the kernel count, len(conn_in), and whose conn_in names input maps 0..n_in-1."""
    if start[0] != 0 or start[-1] != len(conn_in) or np.any(np.diff(start) < 0):
        raise ValueError(f"{kernel}: conn_start must rise from 0 to the number of kernels ({len(conn_in)}), "
                         f"got {start.tolist()}")
    if len(conn_in) and (conn_in.min() < 0 or conn_in.max() >= n_in):
        bad = int(np.flatnonzero((conn_in < 0) | (conn_in >= n_in))[0])
        raise ValueError(f"{kernel}: conn_in[{bad}] = {conn_in[bad]} is not an input map index in [0, {n_in})")


def _labels(kernel, given, dims):
    labels = given["labels"]
    if len(labels) and (labels.min() < 0 or labels.max() >= dims["K"]):
        bad = int(np.flatnonzero((labels < 0) | (labels >= dims["K"]))[0])
        raise ValueError(f"{kernel}: labels[{bad}] = {labels[bad]} is not a class index in [0, {dims['K']})")


_SPECIAL = {"@fits": _fits, "@table": _table, "@labels": _labels}


def guard_kernels(namespace, max_threads=None, exact_types=True):
    """Replace each kernel in a backend's namespace (its module's globals()) by checked(kernel)."""
    for name in CONTRACTS:
        namespace[name] = checked(namespace[name], max_threads, exact_types)


def checked(kernel_fn, max_threads=None, exact_types=True):
    """kernel_fn (n_threads last, positional or by keyword) with its arguments checked first
    (check_call), and its thread count unless max_threads is None (the NumPy reference ignores it)."""
    kernel = kernel_fn.__name__
    names = [p for p in inspect.signature(kernel_fn).parameters if p != "n_threads"]

    def call(*args, **kwargs):
        # Arguments the kernel would refuse anyway (too few, unknown keywords) are left to its TypeError.
        if len(args) >= len(names) and set(kwargs) <= {"n_threads"}:
            check_call(kernel, names, args[:len(names)], exact_types)
            n_threads = kwargs.get("n_threads", args[len(names)] if len(args) > len(names) else None)
            if n_threads is not None and max_threads is not None:
                check_threads(kernel, n_threads, max_threads)
        return kernel_fn(*args, **kwargs)

    call.__name__ = call.__qualname__ = kernel
    call.__doc__ = kernel_fn.__doc__
    call.__wrapped__ = kernel_fn
    return call


def check_threads(kernel, n_threads, max_threads):
    """n_threads must be a whole number from 1 to max_threads."""
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)):
        raise TypeError(f"{kernel}: n_threads must be an int, got {type(n_threads).__name__}")
    if not 1 <= n_threads <= max_threads:
        raise ValueError(f"{kernel}: n_threads = {n_threads} is outside 1..{max_threads}")

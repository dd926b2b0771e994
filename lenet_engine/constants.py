"""The fixed numbers of LeNet-5: Table I, the squashing function, the RBF prototypes.

Kept in one module so that each appears once; the kernels never hard-code
them, the model passes them in as arguments.
"""

import numpy as np

from lenet_engine.kernels.tables import table_arrays

# Squashing function of the 1998 paper: f(a) = A * tanh(S * a).
SQUASH_AMPLITUDE = 1.7159
SQUASH_SLOPE = 2.0 / 3.0

# Classic input scaling: background (0) -> -0.1, ink (255) -> 1.175, the
# paper's choice to bring the inputs near mean 0 and variance 1 (on MNIST the
# mean is about 0.02 and the variance about 0.1: most pixels are background).
CLASSIC_BACKGROUND = -0.1
CLASSIC_INK = 1.175

# Table I of the paper: the S2 maps each C3 map reads (60 connections).
TABLE_I = (
    (0, 1, 2),
    (1, 2, 3),
    (2, 3, 4),
    (3, 4, 5),
    (0, 4, 5),
    (0, 1, 5),
    (0, 1, 2, 3),
    (1, 2, 3, 4),
    (2, 3, 4, 5),
    (0, 3, 4, 5),
    (0, 1, 4, 5),
    (0, 1, 2, 5),
    (0, 1, 3, 4),
    (1, 2, 4, 5),
    (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def connection_arrays(table=TABLE_I):
    """Table I in the compressed form the sparse-convolution kernels read.

    Returns (conn_start, conn_in), both int64: the kernels of output map o are
    w[conn_start[o]:conn_start[o + 1]] and read input maps conn_in[same range].
    """
    return table_arrays(table)


# RBF prototypes: 7 wide x 12 tall bitmaps of the digits, '#' = +1, '.' = -1.
# Drawn for this project in the spirit of the paper's stylised ASCII digits.
RBF_BITMAPS = {
    0: """
..###..
.#...#.
#.....#
#.....#
#.....#
#.....#
#.....#
#.....#
#.....#
.#...#.
..###..
.......""",
    1: """
...#...
..##...
.#.#...
...#...
...#...
...#...
...#...
...#...
...#...
...#...
.#####.
.......""",
    2: """
..###..
.#...#.
#.....#
......#
.....#.
....#..
...#...
..#....
.#.....
#......
#######
.......""",
    3: """
.#####.
#.....#
......#
......#
.....#.
..###..
.....#.
......#
......#
#.....#
.#####.
.......""",
    4: """
.....#.
....##.
...#.#.
..#..#.
.#...#.
#....#.
#######
.....#.
.....#.
.....#.
.....#.
.......""",
    5: """
#######
#......
#......
#......
######.
......#
......#
......#
......#
#.....#
.#####.
.......""",
    6: """
....##.
...#...
..#....
.#.....
#.###..
##...#.
#.....#
#.....#
#.....#
.#...#.
..###..
.......""",
    7: """
#######
......#
.....#.
.....#.
....#..
....#..
...#...
...#...
..#....
..#....
..#....
.......""",
    8: """
..###..
.#...#.
#.....#
.#...#.
..###..
.#...#.
#.....#
#.....#
#.....#
.#...#.
..###..
.......""",
    9: """
..###..
.#...#.
#.....#
#.....#
#.....#
.#...##
..###.#
.....#.
....#..
...#...
..#....
.......""",
}


def rbf_prototypes():
    """The ten RBF centres as a (10, 84) float32 array of -1/+1, row i = digit i."""
    rows = []
    for digit in range(10):
        lines = RBF_BITMAPS[digit].strip().splitlines()
        rows.append([1.0 if ch == "#" else -1.0 for line in lines for ch in line])
    return np.array(rows, dtype=np.float32)

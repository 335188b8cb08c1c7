"""Large state arrays start on a cache line (kernels.aligned), so no record spans two."""
from __future__ import annotations

import numpy as np
import pytest

from kernels import aligned, book_state
from kernels import records as R
from kernels.itch import refs


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64, R.ORDER, R.LEVEL, R.ITCH_REF,
                                   R.BOOK])
@pytest.mark.parametrize("n", [1, 3, 1000, 300_000])
def test_zeros_is_np_zeros_on_a_cache_line(dtype, n):
    a = aligned.zeros(n, dtype)
    assert a.dtype == np.dtype(dtype) and a.shape == (n,)
    assert a.ctypes.data % 64 == 0 and aligned.is_aligned(a)
    assert a.tobytes() == np.zeros(n, dtype).tobytes()
    a.view(np.uint8)[:] = 7           # writable over its whole length, and no further
    assert a.nbytes == n * np.dtype(dtype).itemsize


def test_zeros_of_nothing_is_empty():
    assert aligned.zeros(0, R.ORDER).shape == (0,)


def test_is_aligned_tells_a_misaligned_view():
    a = aligned.zeros(64, np.uint8)
    assert aligned.is_aligned(a) and not aligned.is_aligned(a[16:])
    assert aligned.is_aligned(a[16:], align=16) and not aligned.is_aligned(a[8:], align=16)


def test_the_engine_state_and_the_itch_table_start_on_cache_lines():
    # large enough that numpy takes the memory from mmap (16 bytes past a page start)
    st = book_state.allocate_state(8, 200_000, 4096, [1] * 8)
    for name in ("pool", "levels", "bits", "books", "index_keys", "index_slots"):
        assert getattr(st, name).ctypes.data % 64 == 0, name
    # so every 64-byte order and every 32-byte level lies inside one line
    starts = st.pool.ctypes.data + np.arange(len(st.pool)) * R.ORDER.itemsize
    assert np.all(starts // 64 == (starts + R.ORDER.itemsize - 1) // 64)
    assert st.pool["next"][0] == 1 and st.pool["prev"][0] == -1
    assert np.all(st.index_keys == book_state.EMPTY_KEY) and np.all(st.index_slots == -1)
    table = refs.new_table(1 << 16)
    assert table.ctypes.data % 64 == 0 and not table["used"].any()
    assert refs.grow(table).ctypes.data % 64 == 0

"""workbench.buffers: the one byte-buffer boundary of the FIX and ITCH parsers."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.buffers import byte_buffer, read_only
from workbench.data import itch
from workbench.fix.parser import as_buffer


@pytest.mark.parametrize("data", [b"8=FIX.4.4", bytearray(b"8=FIX.4.4"), memoryview(b"8=FIX.4.4"),
                                  np.frombuffer(b"8=FIX.4.4", np.uint8).copy()])
def test_bytes_like_inputs_become_one_read_only_type(data):
    buf = byte_buffer(data)
    assert buf.dtype == np.uint8 and buf.ndim == 1 and buf.flags.c_contiguous
    assert not buf.flags.writeable
    assert buf.tobytes() == b"8=FIX.4.4"
    if isinstance(data, (bytearray, np.ndarray)):
        if isinstance(data, np.ndarray):
            assert data.flags.writeable
        data[0] = ord("9")              # the caller's buffer stays writable, and shared
        assert buf[0] == ord("9")


def test_a_strided_array_is_copied_contiguous():
    base = np.arange(20, dtype=np.uint8)
    buf = byte_buffer(base[::2])
    assert buf.flags.c_contiguous and not buf.flags.writeable
    assert buf.tolist() == list(range(0, 20, 2))


@pytest.mark.parametrize("data, words", [
    ([1, 2, 3], "got list"),
    (12, "got int"),
    ("text", "got str"),
    (np.zeros(4, np.int32), "dtype=int32"),
    (np.zeros((2, 2), np.uint8), "ndim=2"),
])
def test_anything_else_is_a_value_error_naming_it(data, words):
    with pytest.raises(ValueError, match=words):
        byte_buffer(data)


@pytest.mark.parametrize("data", [[0, 35, 65], 3.5, {"a": 1}])
def test_the_itch_loader_refuses_non_bytes_with_a_value_error(data):
    with pytest.raises(ValueError, match="data: expected bytes"):
        itch.from_bytes(data)


def test_the_fix_parser_names_what_it_takes():
    with pytest.raises(ValueError, match="got list"):
        as_buffer([1, 2])
    assert as_buffer("8=FIX.4.4\x01").tobytes() == b"8=FIX.4.4\x01"


def test_read_only_leaves_a_read_only_array_alone():
    a = np.zeros(3, np.uint8)
    a.flags.writeable = False
    assert read_only(a) is a
    b = np.zeros(3, np.uint8)
    assert read_only(b) is not b and b.flags.writeable

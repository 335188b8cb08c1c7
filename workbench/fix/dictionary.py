"""The FIX 4.4 data dictionary subset the package ships, and its kernel lookup tables.

``fix44_subset.json`` is generated from FIX44.xml by ``scripts/gen_fix_dictionary.py``;
this module loads it once and turns it into the flat numpy tables
``kernels.fix.validate.validate`` reads (field types, enum values packed into int64, which
tags each message type allows and requires, repeating-group openers).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from kernels.fix.frame import pack_msg_type
from kernels.fix.validate import (
    INFO_ALLOWED, INFO_GROUP_SHIFT, INFO_HAS_ENUMS, INFO_HEADER, INFO_IN_GROUP, MAX_TAG, T_BOOLEAN,
    T_CHAR, T_DECIMAL, T_INT, T_MULTI, T_STRING, T_TIMESTAMP,
)
from kernels.records import (
    SR_COMP_ID_PROBLEM, SR_GROUP_COUNT, SR_INCORRECT_DATA_FORMAT, SR_INVALID_MSG_TYPE,
    SR_INVALID_TAG, SR_OUT_OF_ORDER, SR_REQUIRED_TAG_MISSING, SR_SENDING_TIME,
    SR_TAG_NOT_DEFINED_FOR_MSG_TYPE, SR_TAG_REPEATED, SR_TAG_WITHOUT_VALUE, SR_VALUE_OUT_OF_RANGE,
)

SUBSET_PATH = Path(__file__).with_name("fix44_subset.json")

_TYPE_CODES = {
    "INT": T_INT, "LENGTH": T_INT, "SEQNUM": T_INT, "NUMINGROUP": T_INT,
    "DAYOFMONTH": T_INT,
    "PRICE": T_DECIMAL, "QTY": T_DECIMAL, "AMT": T_DECIMAL, "FLOAT": T_DECIMAL,
    "PRICEOFFSET": T_DECIMAL, "PERCENTAGE": T_DECIMAL,
    "CHAR": T_CHAR, "BOOLEAN": T_BOOLEAN, "UTCTIMESTAMP": T_TIMESTAMP,
    "MULTIPLEVALUESTRING": T_MULTI,
}

SESSION_REJECT_NAMES = {
    SR_INVALID_TAG: "invalid_tag_number",
    SR_REQUIRED_TAG_MISSING: "required_tag_missing",
    SR_TAG_NOT_DEFINED_FOR_MSG_TYPE: "tag_not_defined_for_msg_type",
    SR_TAG_WITHOUT_VALUE: "tag_without_value",
    SR_VALUE_OUT_OF_RANGE: "value_out_of_range",
    SR_INCORRECT_DATA_FORMAT: "incorrect_data_format",
    SR_COMP_ID_PROBLEM: "comp_id_problem",
    SR_SENDING_TIME: "sending_time_accuracy",
    SR_OUT_OF_ORDER: "tag_out_of_order",
    SR_INVALID_MSG_TYPE: "invalid_msg_type",
    SR_TAG_REPEATED: "tag_repeated",
    SR_GROUP_COUNT: "group_count_mismatch",
}

# Text QuickFIX puts in a session Reject's Text (58), by SessionRejectReason.
SESSION_REJECT_TEXT = {
    SR_INVALID_TAG: "Invalid tag number",
    SR_REQUIRED_TAG_MISSING: "Required tag missing",
    SR_TAG_NOT_DEFINED_FOR_MSG_TYPE: "Tag not defined for this message type",
    SR_TAG_WITHOUT_VALUE: "Tag specified without a value",
    SR_VALUE_OUT_OF_RANGE: "Value is incorrect (out of range) for this tag",
    SR_INCORRECT_DATA_FORMAT: "Incorrect data format for value",
    SR_COMP_ID_PROBLEM: "CompID problem",
    SR_SENDING_TIME: "SendingTime accuracy problem",
    SR_OUT_OF_ORDER: "Tag specified out of required order",
    SR_INVALID_MSG_TYPE: "Invalid MsgType",
    SR_TAG_REPEATED: "Tag appears more than once",
    SR_GROUP_COUNT: "Incorrect NumInGroup count for repeating group",
}


def _pack(value: str) -> int:
    packed = 0
    for byte in value.encode("latin-1"):
        packed = (packed << 8) | byte
    return packed


@dataclass(frozen=True)
class Dictionary:
    """The shipped FIX 4.4 subset: names for people, tables for ``kernels.fix.validate.validate``."""

    raw: dict
    begin_string: np.ndarray
    tag_info: np.ndarray      # (n_types, MAX_TAG) int64, kernels.fix.validate.INFO_* bits
    char_enums: np.ndarray
    enum_offsets: np.ndarray
    enum_values: np.ndarray
    known_types: np.ndarray
    type_offsets: np.ndarray
    required: np.ndarray
    header_required: np.ndarray

    def tables(self) -> tuple:
        """The arguments of ``kernels.fix.validate.validate`` after (buf, msgs, fields)."""
        return (self.begin_string, self.tag_info, self.char_enums, self.enum_offsets, self.enum_values,
                self.known_types, self.type_offsets, self.required, self.header_required)

    def field_name(self, tag: int) -> str:
        entry = self.raw["fields"].get(str(tag))
        return entry["name"] if entry else str(tag)

    def msg_type_name(self, msg_type: str) -> str:
        return self.raw["msg_types"].get(msg_type, "Unknown")

    def required_tags(self, msg_type: str) -> list[int]:
        """Header tags plus the body tags a message type requires."""
        body = self.raw["messages"].get(msg_type, {}).get("required", [])
        return sorted(set(self.raw["header"]["required"]) | set(body) | {10})

    def enum_values_of(self, tag: int) -> list[str]:
        return list(self.raw["fields"].get(str(tag), {}).get("enums", []))

    def enum_name(self, tag: int, value) -> str | None:
        """The standard's name of an enum value: ``enum_name(39, "2") == "FILLED"``.
        ``value`` is the wire text or, for a CHAR field, its byte code (50 for '2', as the
        decoded records keep it); None when the field has no such value."""
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            value = chr(int(value)) if 0 < int(value) < 256 else ""
        return self.raw["fields"].get(str(tag), {}).get("enum_names", {}).get(str(value))


@lru_cache(maxsize=1)
def load_dictionary(path: Path = SUBSET_PATH) -> Dictionary:
    """Load the shipped subset and build the kernel tables (cached)."""
    raw = json.loads(Path(path).read_text())
    field_types = np.zeros(MAX_TAG, np.uint8)
    enum_lists: list[list[int]] = [[] for _ in range(MAX_TAG)]
    for tag_text, entry in raw["fields"].items():
        tag = int(tag_text)
        if tag >= MAX_TAG:
            continue
        field_types[tag] = _TYPE_CODES.get(entry["type"], T_STRING)
        if tag in (8, 35):
            continue  # BeginString and MsgType are checked on their own (no enum scan)
        enum_lists[tag] = [_pack(v) for v in entry.get("enums", []) if len(v) <= 8]
    char_enums = np.zeros((MAX_TAG, 32), np.uint8)
    for tag, values in enumerate(enum_lists):
        for v in values:
            if v < 256:
                char_enums[tag, v >> 3] |= 1 << (v & 7)
    enum_offsets = np.zeros(MAX_TAG + 1, np.int64)
    enum_offsets[1:] = np.cumsum([len(e) for e in enum_lists])
    enum_values = np.array([v for e in enum_lists for v in e], np.int64)

    in_group = np.zeros(MAX_TAG, np.uint8)
    in_group[[t for t in raw["grouped_tags"] if t < MAX_TAG]] = 1

    subset = list(raw["messages"])
    others = [t for t in raw["msg_types"] if t not in raw["messages"]]
    order = subset + others
    known_types = np.array([pack_msg_type(t) for t in order], np.int32)
    header_trailer = set(raw["header"]["fields"]) | set(raw["trailer"]["fields"])
    allowed = np.zeros((len(order), MAX_TAG), np.uint8)
    group_first = np.zeros((len(order), MAX_TAG), np.int32)
    required: list[int] = []
    type_offsets = [0]
    for row, msg_type in enumerate(order):
        spec = raw["messages"].get(msg_type)
        if spec is None:
            # a FIX 4.4 type we do not ship the layout of: check fields are defined only
            allowed[row, field_types > 0] = 1
        else:
            tags = [t for t in set(spec["fields"]) | header_trailer if t < MAX_TAG]
            allowed[row, tags] = 1
            required.extend(t for t in spec["required"] if t < MAX_TAG)
            for count, opener in spec["groups"].items():
                if int(count) < MAX_TAG:
                    group_first[row, int(count)] = opener
        type_offsets.append(len(required))
    has_enums = np.diff(enum_offsets) > 0
    tag_info = (field_types.astype(np.int64)
                | np.where(in_group > 0, INFO_IN_GROUP, 0)
                | np.where(has_enums, INFO_HAS_ENUMS, 0))[None, :] \
        | np.where(allowed > 0, INFO_ALLOWED, 0) \
        | (group_first.astype(np.int64) << INFO_GROUP_SHIFT)
    header_tags = [t for t in raw["header"]["fields"] if t < MAX_TAG]
    tag_info[:, header_tags] |= INFO_HEADER
    begin = raw["begin_string"].encode("ascii")
    return Dictionary(
        raw=raw,
        begin_string=np.frombuffer(begin, np.uint8).copy(),
        tag_info=np.ascontiguousarray(tag_info, np.int64),
        char_enums=char_enums,
        enum_offsets=enum_offsets,
        enum_values=enum_values,
        known_types=known_types,
        type_offsets=np.array(type_offsets, np.int64),
        required=np.array(required, np.int32),
        header_required=np.array(raw["header"]["required"] + raw["trailer"]["required"], np.int32),
    )

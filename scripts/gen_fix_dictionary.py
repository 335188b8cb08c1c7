"""Generate ``workbench/fix/fix44_subset.json`` from the FIX44.xml data dictionary.

Usage: ``python scripts/gen_fix_dictionary.py [../shared/data/fix/dictionaries/FIX44.xml]``

The package ships only the subset it validates: the header and trailer, the session
messages, the order-entry messages and market data (see ``SUBSET``), every FIX 4.4 field's
name and type, the enum values (and their names) of the fields those messages can carry, which tags sit inside repeating groups, and, per message,
the tag that opens an entry of each repeating group. It also lists every FIX 4.4 MsgType so an
unknown type (invalid) can be told from a known one we do not handle.
"""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_XML = REPO.parent / "shared" / "data" / "fix" / "dictionaries" / "FIX44.xml"
OUT = REPO / "workbench" / "fix" / "fix44_subset.json"

SUBSET = ["0", "1", "2", "3", "4", "5", "A", "D", "F", "G", "8", "9", "V", "W", "X", "Y", "j"]


def generate(xml_path: Path) -> dict:
    root = ET.parse(xml_path).getroot()
    number = {f.get("name"): int(f.get("number")) for f in root.find("fields")}
    components = {c.get("name"): c for c in root.find("components")}

    def walk(node, required_path, in_group, acc):
        """Collect fields under node: all tags, required tags, grouped tags, group openers."""
        for child in node:
            req = child.get("required") == "Y" and required_path
            if child.tag == "field":
                tag = number[child.get("name")]
                acc["fields"].add(tag)
                if req and not in_group:
                    acc["required"].add(tag)
                if in_group:
                    acc["grouped"].add(tag)
            elif child.tag == "component":
                walk(components[child.get("name")], req, in_group, acc)
            elif child.tag == "group":
                count = number[child.get("name")]
                acc["fields"].add(count)
                if req and not in_group:
                    acc["required"].add(count)
                if in_group:
                    acc["grouped"].add(count)
                acc["groups"].setdefault(count, first_field(child))
                walk(child, False, True, acc)

    def first_field(node):
        for child in node:
            if child.tag in ("field", "group"):
                return number[child.get("name")]
            if child.tag == "component":
                return first_field(components[child.get("name")])
        raise ValueError(f"empty group {node.get('name')}")

    def collect(node):
        acc = {"fields": set(), "required": set(), "grouped": set(), "groups": {}}
        walk(node, True, False, acc)
        return acc

    header, trailer = collect(root.find("header")), collect(root.find("trailer"))
    all_types = {m.get("msgtype"): m.get("name") for m in root.find("messages")}
    messages, used, grouped = {}, set(header["fields"] | trailer["fields"]), set(header["grouped"])
    for m in root.find("messages"):
        if m.get("msgtype") not in SUBSET:
            continue
        acc = collect(m)
        messages[m.get("msgtype")] = {
            "name": m.get("name"),
            "required": sorted(acc["required"]),
            "fields": sorted(acc["fields"]),
            "groups": {str(k): v for k, v in sorted({**header["groups"], **acc["groups"]}.items())},
        }
        used |= acc["fields"]
        grouped |= acc["grouped"]
    fields = {}
    for f in root.find("fields"):
        tag = int(f.get("number"))
        # every field's name and type (so any FIX 4.4 tag is "defined"); enum values
        # only for the fields the shipped messages can carry
        fields[str(tag)] = {"name": f.get("name"), "type": f.get("type")}
        if tag in used:
            fields[str(tag)]["enums"] = [v.get("enum") for v in f.findall("value")]
            # the standard's names of those values (OrdStatus '2' -> FILLED), for people
            names = {v.get("enum"): v.get("description") for v in f.findall("value")
                     if v.get("description")}
            if names:
                fields[str(tag)]["enum_names"] = names
    return {
        "generated_from": xml_path.name,
        "begin_string": f"{root.get('type')}.{root.get('major')}.{root.get('minor')}",
        "msg_types": all_types,
        "header": {"required": sorted(header["required"]), "fields": sorted(header["fields"])},
        "trailer": {"required": sorted(trailer["required"]), "fields": sorted(trailer["fields"])},
        "messages": messages,
        "fields": fields,
        "grouped_tags": sorted(grouped),
    }


def main(argv: list[str]) -> int:
    xml_path = Path(argv[0]) if argv else DEFAULT_XML
    if not xml_path.exists():
        raise SystemExit(f"FIX44.xml not found at {xml_path}; pass its path")
    data = generate(xml_path)
    OUT.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"wrote {OUT.relative_to(REPO)}: {len(data['messages'])} messages, {len(data['fields'])} fields")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

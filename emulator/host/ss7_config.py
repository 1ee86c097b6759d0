"""The SS7 part of a loaded configuration version, as the units and the gateway use it.

Pure (no I/O). The configuration database holds linksets, links and ISUP trunk groups
(schema.py); the OAM edits them row by row, so a configuration can be incomplete while an
operator builds it. What the units run is checked here, at each load, as a whole:

- one linkset (the system's SS7 node spreads one linkset to one far end), with links
  SLC 0 and 1 ended by two different units that have a VoIP address (TB_SERVICES);
- one ISUP trunk group per unit ending a link, with CIC ranges that do not overlap.

`for_units` gives the `ss7` field of every board's `configure` (the same for every board:
a spare that takes a unit over starts that unit's node at once), or None and the reason
when the configuration has no usable SS7 (then no node runs, and the reload's result and
the engine's status say why). A gateway route may name a trunk group: `group_destination`
resolves it to the interworking of the group's unit (port ISUP_IW_PORT on the unit's VoIP
address, which the spare takes over with the unit).
"""
from __future__ import annotations

from ..ss7 import MAX_CIC, MAX_PC

ISUP_IW_PORT = 5070     # each unit's SIP-ISUP interworking (emulator/ss7/interwork.py)


def _address(services: dict, unit: str) -> str | None:
    svc = services.get(unit)
    return svc["address"].split("/")[0] if svc and svc.get("address") else None


def for_units(ss7: dict | None, services: dict) -> tuple[dict | None, str | None]:
    """(the units' SS7 configuration, None) or (None, why there is none)."""
    linksets = (ss7 or {}).get("linksets") or []
    if not linksets:
        return None, None
    if len(linksets) > 1:
        return None, (f"{len(linksets)} linksets ({', '.join(l['name'] for l in linksets)}): "
                      "the units run one linkset, to one far end")
    ls = linksets[0]
    name = ls["name"]
    links = sorted(ls.get("links") or [], key=lambda l: l["slc"])
    if [l["slc"] for l in links] != [0, 1]:
        return None, (f"linkset {name!r} has links {[l['slc'] for l in links]}: it needs "
                      "links 0 and 1, one on each of two units")
    units = [l["unit"] for l in links]
    if units[0] == units[1]:
        return None, f"linkset {name!r}: both links end on {units[0]!r}"
    for u in units:
        if _address(services, u) is None:
            return None, f"linkset {name!r}: {u!r} is not a unit with a VoIP address"
    for pc, what in ((ls["opc"], "own point code"), (ls["dpc"], "far end's point code")):
        if not 0 <= pc <= MAX_PC:
            return None, f"linkset {name!r}: the {what} {pc} is not 0..{MAX_PC}"
    if ls["opc"] == ls["dpc"]:
        return None, f"linkset {name!r}: the far end has the system's own point code {ls['opc']}"
    groups = {}
    for g in (ss7 or {}).get("trunk_groups") or []:
        if g["linkset"] != name:
            continue
        if g["unit"] not in units:
            return None, f"trunk group {g['name']!r}: unit {g['unit']!r} ends no link of {name!r}"
        if g["unit"] in groups:
            return None, (f"unit {g['unit']!r} has two trunk groups ({groups[g['unit']]['name']!r}, "
                          f"{g['name']!r}): one per unit")
        if not 1 <= g["cic_first"] <= g["cic_last"] <= MAX_CIC:
            return None, (f"trunk group {g['name']!r}: CICs {g['cic_first']}-{g['cic_last']} "
                          f"are not a range within 1..{MAX_CIC}")
        groups[g["unit"]] = g
    for u in units:
        if u not in groups:
            return None, f"unit {u!r} ends a link of {name!r} but has no ISUP trunk group"
    a, b = sorted(groups.values(), key=lambda g: g["cic_first"])
    if b["cic_first"] <= a["cic_last"]:
        return None, f"trunk groups {a['name']!r} and {b['name']!r} share CICs"
    return {"linkset": name, "opc": ls["opc"], "dpc": ls["dpc"],
            "units": [[u, _address(services, u)] for u in units],
            "groups": {u: [g["cic_first"], g["cic_last"]] for u, g in groups.items()},
            "group_names": {u: g["name"] for u, g in groups.items()},
            "sip_port": ISUP_IW_PORT}, None


def group_destination(ss7: dict | None, services: dict, group: str) -> tuple[dict | None, str]:
    """A route's trunk group as the SIP address of its unit's interworking, or None and
    why the group cannot take calls (unknown, or the loaded SS7 configuration unusable)."""
    part, why = for_units(ss7, services)
    if part is None:
        return None, f"ISUP trunk group {group!r} not in service: {why or 'no SS7 configured'}"
    for unit, name in part["group_names"].items():
        if name == group:
            return {"host": _address(services, unit), "port": part["sip_port"]}, ""
    return None, f"no ISUP trunk group {group!r} on linkset {part['linkset']!r}"

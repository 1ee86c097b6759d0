"""The SS7 side as the OAM shows it (`GET /api/v1/ss7`), from the units' status as the
sys_manager last polled it: no request of its own to a unit.

- `links`: each link of the linkset, the unit (and board) that ends it, its state as the
  unit ends it and as MTP3 on the active unit uses it (with the MSUs it carried);
- `instances`: the units holding the active and the standby ISUP, SCCP and TCAP. One
  SS7 node per unit runs all three, so they are active or standby together; two active
  units (a split brain) are both listed;
- `circuits`: each CIC's state as the active ISUP holds it (`down` for the trunk group of
  a lost unit: the seed gives trunks no HA), with the count per state; `refusing`: the
  trunk groups whose unit's SS7 stack the operator disabled, with the cause new calls get.
"""
from __future__ import annotations

LAYERS = ("isup", "sccp", "tcap")


def nodes(units: dict, services: dict) -> dict:
    """unit -> (board, the SS7 node's status) for each unit whose board runs a node."""
    out = {}
    for unit, board in sorted(services.items()):
        st = (((units.get(board) or {}).get("status") or {}).get("ss7")) if board else None
        if st:
            out[unit] = (board, st)
    return out


def view(units: dict, services: dict) -> dict:
    """units: board -> its polled record ({"status": {...}}); services: unit -> board."""
    found = nodes(units, services)
    active = [u for u, (_, st) in found.items() if st.get("role") == "active"]
    standby = [u for u, (_, st) in found.items() if st.get("role") == "standby"]
    mtp3_links = {}
    if len(active) == 1:
        mtp3_links = ((found[active[0]][1].get("mtp3") or {}).get("links")) or {}
    def record(unit, board, node, link):
        slc = link.get("slc")
        used = mtp3_links.get(str(slc)) or mtp3_links.get(slc) or {}
        return {"slc": slc, "unit": unit, "board": board, "node": node,
                "state": link.get("state"), "failure": link.get("failure"),
                "mtp3_state": used.get("state"),
                "traffic_tx": used.get("traffic_tx"), "traffic_rx": used.get("traffic_rx")}
    links = [record(unit, board, "running" if st.get("running", True) else "stopped",
                    st.get("link") or {}) for unit, (board, st) in found.items()]
    # a unit with no node polled (its board lost): its link as the active unit's node
    # last heard of it from its mate, and as MTP3 uses it
    if len(active) == 1:
        st = found[active[0]][1]
        mate, mate_link = st.get("mate"), st.get("mate_link") or {}
        if mate and mate not in found and mate_link.get("slc") is not None:
            links.append(record(mate, services.get(mate), "not polled", mate_link))
    links.sort(key=lambda x: (x["slc"] is None, x["slc"] if x["slc"] is not None else 0))
    isup = (found[active[0]][1].get("isup") or {}) if len(active) == 1 else {}
    return {
        "configured": bool(found),
        "links": links,
        "instances": {layer: {"active": active, "standby": standby} for layer in LAYERS},
        "takeovers": (found[active[0]][1].get("takeovers") or []) if len(active) == 1 else [],
        "circuits": isup.get("circuits") or {},
        "circuit_states": isup.get("states") or {},
        "groups_down": isup.get("groups_down") or [],
        "refusing": isup.get("refusing") or {},      # groups whose unit's SS7 stack is disabled
    }

"""The run report: one HTML page per run directory with the seed's table (expected beside
observed, every sub-check of the composed verdict), the switchover times, the transient
calls accepted and dropped with their codes, and a timeline per operation (every call a
bar from INVITE to its end, coloured by outcome, an ISUP leg marked at its start; the
fault window shaded from inject to heal), where each operation's wall time went (a
table and a stacked bar per operation), plus results.json for tools. JUnit XML comes from pytest (--junitxml).

Every operation the session collected is a row, also one that errored before it wrote
a result, was deselected or never ran: its status then comes from pytest's outcome of
it (set-up error, skipped) or is `not run`. Nothing but a verdict of `ok` is green.

    python -m harness.report runs/latest
    python -m harness.report merge DIR... [--out DIR]     one report of several runs (shards)
"""
from __future__ import annotations

import html
import json
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from .history import calls as history_calls
from .history import load as load_history
from .history import of_kind
from .isup_load import is_isup

COLOURS = {"completed": "#2e7d32", "failed": "#f9a825", "unanswered": "#ef6c00",
           "dropped": "#c62828"}
STATUS_COLOURS = {"ok": "#2e7d32", "failed": "#c62828", "error": "#c62828",
                  "unknown": "#ef6c00", "n/a": "#757575", "not run": "#757575",
                  "skipped": "#757575"}


def isup_rows(calls) -> list[int]:
    """The timeline's rows (calls by INVITE time) that are ISUP legs."""
    return [i for i, c in enumerate(calls) if is_isup(c)]


def timeline(scn_dir: Path, result: dict) -> str | None:
    """Draw the operation's calls; returns the PNG's file name, or None without data."""
    hist = scn_dir / "history.jsonl"
    if not hist.exists() or not result.get("t_fault"):
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    events = load_history(hist)
    calls = sorted(history_calls(events), key=lambda c: c.invite_t)
    if not calls:
        return None
    t0 = result["t_fault"]
    classes = result.get("classes", {})
    fig, ax = plt.subplots(figsize=(10, min(0.05 * len(calls) + 1.5, 14)))
    for i, c in enumerate(calls):
        end = c.end_t or c.bye_ok_t or c.final_t or c.invite_t
        ax.plot([c.invite_t - t0, end - t0], [i, i], color=COLOURS.get(c.outcome, "grey"),
                linewidth=1.5, solid_capstyle="butt")
        if classes.get(c.call_id) == "transient":
            ax.plot([c.invite_t - t0], [i], marker=">", color="#6a1b9a", markersize=3)
    legs = isup_rows(calls)
    if legs:     # the ISUP legs of an SS7 operation among the SIP calls
        ax.plot([calls[i].invite_t - t0 for i in legs], legs, marker="s", color="#00838f",
                markersize=2.5, linestyle="", label=f"ISUP leg ({len(legs)})")
    heals = [e.t for e in of_kind(events, "fault", action="heal")]
    t_heal = max(heals) if heals else None
    ax.axvspan(0, (t_heal - t0) if t_heal else ax.get_xlim()[1], color="#c62828", alpha=0.08,
               label="fault window (inject to heal)")
    ax.axvline(0, color="#c62828", linestyle="--", label="fault")
    sw = result.get("switchover_s")
    if sw is not None:
        ax.axvline(sw, color="#1565c0", linestyle=":", label=f"first new call answered ({sw:.2f} s)")
    for name, colour in COLOURS.items():
        ax.plot([], [], color=colour, linewidth=3, label=name)
    ax.plot([], [], marker=">", color="#6a1b9a", linestyle="", label="transient")
    ax.set_xlabel("seconds from the fault")
    ax.set_ylabel("calls (by INVITE time)")
    ax.set_title(f"{result['operation']}: {result['seed']}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    name = "timeline.png"
    fig.savefig(scn_dir / name, dpi=80)
    plt.close(fig)
    return name


def _status(result: dict | None, phases: dict) -> tuple[str, str]:
    """(status, why) of one operation from its result and pytest's phases."""
    setup, teardown = phases.get("setup", {}), phases.get("teardown", {})
    if result is None:
        if setup.get("outcome") == "failed":
            return "error", f"set-up failed: {setup.get('message', '')}"
        if setup.get("outcome") == "skipped":
            return "skipped", setup.get("message", "")
        return "not run", "deselected, or the session ended before it"
    status = result.get("status", "error")
    if teardown.get("outcome") == "failed":
        return "error", f"{status}, then the teardown failed: {teardown.get('message', '')}"
    return status, (result.get("verdict") or {}).get("error") or ""


def phase_table(rows: list[dict]) -> tuple[list[str], list[tuple[str, dict]]]:
    """(the phases in run order, [(operation, {phase: s})]) of the operations that
    recorded their wall time (result.json `phase_s`, harness/scenario.py Phases)."""
    names: list[str] = []
    per_op = []
    for row in rows:
        ph = (row["result"] or {}).get("phase_s") or {}
        if ph:
            names += [n for n in ph if n not in names]
            per_op.append((row["operation"], ph))
    return names, per_op


def phases_plot(run_dir: Path, names: list[str], per_op: list[tuple[str, dict]]) -> str | None:
    """One stacked bar per operation: where its wall time went."""
    if not per_op:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(12, 0.3 * len(per_op) + 2.2))
    left = [0.0] * len(per_op)
    cmap = plt.get_cmap("tab20")
    for i, name in enumerate(names):
        widths = [ph.get(name, 0.0) for _, ph in per_op]
        ax.barh(range(len(per_op)), widths, left=left, color=cmap(i % 20), label=name)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_yticks(range(len(per_op)), [op for op, _ in per_op], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title("where each operation's wall time went", fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    name = "phases.png"
    fig.savefig(run_dir / name, dpi=80)
    plt.close(fig)
    return name


def phases_section(run_dir: Path, rows: list[dict]) -> str:
    names, per_op = phase_table(rows)
    if not per_op:
        return ""
    total = {n: sum(ph.get(n, 0.0) for _, ph in per_op) for n in names}
    whole = sum(total.values())
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join(
        f"<tr><td>{html.escape(op)}</td><td><b>{sum(ph.values()):.1f}</b></td>"
        + "".join(f"<td>{ph[n]:.1f}</td>" if n in ph else "<td></td>" for n in names) + "</tr>"
        for op, ph in per_op)
    foot = (f"<tr><th>all {len(per_op)}</th><th>{whole:.0f}</th>"
            + "".join(f"<th>{total[n]:.0f} ({100 * total[n] / whole:.0f} %)</th>" for n in names)
            + "</tr>") if whole else ""
    png = phases_plot(run_dir, names, per_op)
    return (f"<h2>Where the time went</h2><p>Each operation's wall time by phase, in seconds "
            f"(the test's set-up and the testbed's bring-up are not in it).</p>"
            f"<table><tr><th>operation</th><th>total</th>{head}</tr>{body}{foot}</table>"
            + (f"<img src='{png}'>" if png else ""))


def _check(name: str, result: dict):
    return next((c for c in (result.get("verdict") or {}).get("checks", [])
                 if c["name"] == name), None)


def _cell(status: str, text: str = "") -> str:
    colour = STATUS_COLOURS.get(status, "#000")
    return (f"<td><b style='color:{colour}'>{html.escape(status)}</b>"
            f"{'<br>' + html.escape(text) if text else ''}</td>")


def rows_of(run_dir: Path, planned: list[dict] | None, outcomes: dict | None) -> list[dict]:
    results = {}
    for res_file in sorted(run_dir.glob("*/result.json")):
        r = json.loads(res_file.read_text())
        results[r["operation"]] = r
    ops = list(planned or [])
    ops += [{k: r.get(k) for k in ("operation", "seed", "expected_transient", "expected_switchover")}
            for op_id, r in results.items() if op_id not in {p["operation"] for p in ops}]
    rows, seen = [], set()
    for op in ops:
        if op["operation"] in seen:
            continue
        seen.add(op["operation"])
        r = results.get(op["operation"])
        status, why = _status(r, (outcomes or {}).get(op["operation"], {}))
        rows.append({**op, "status": status, "why": why, "result": r})
    return rows


def write(run_dir: Path, planned: list[dict] | None = None, outcomes: dict | None = None) -> Path:
    rows = rows_of(run_dir, planned, outcomes)
    table = []
    for row in rows:
        r = row["result"] or {}
        png = timeline(run_dir / row["operation"], r) if r else None
        calls = _check("calls", r) or {}
        counts = (calls.get("data") or {}).get("counts") or {}
        codes = (calls.get("data") or {}).get("drop_codes") or {}
        trans = (f"{counts.get('transient', 0)}: {counts.get('transient_accepted', 0)} accepted, "
                 f"{counts.get('transient_dropped', 0)} dropped"
                 + (f" ({', '.join(f'{k}: {n}' for k, n in codes.items())})" if codes else "")
                 if counts else "")
        sw = (_check("switchover", r) or {}).get("data", {}).get("switchover_s")
        link = f"<a href='{html.escape(row['operation'])}/{png}'>timeline</a>" if png else ""
        subs = "".join(
            f"<div><b style='color:{STATUS_COLOURS.get(c['status'], '#000')}'>{html.escape(c['status'])}"
            f"</b> {html.escape(c['name'])}: {html.escape(c['detail'][:300])}</div>"
            for c in (r.get("verdict") or {}).get("checks", []))
        table.append(
            f"<tr><td>{html.escape(row['operation'])}</td><td>{html.escape(str(row['seed']))}</td>"
            f"<td>established kept; transient {html.escape(str(row['expected_transient']))}; new "
            f"accepted; {'switchover' if row.get('expected_switchover') else 'no switchover'}</td>"
            f"{_cell(row['status'], row['why'])}"
            f"<td>{'none' if sw is None else f'{sw:.3f} s'}</td><td>{html.escape(trans)}</td>"
            f"<td>{subs}</td>"
            f"<td>{link}</td></tr>")
    by = {}
    for row in rows:
        by[row["status"]] = by.get(row["status"], 0) + 1
    tally = ", ".join(f"{n} {s}" for s, n in sorted(by.items()))
    variants = ", ".join(sorted({(row["result"] or {}).get("variant") or "default"
                                 for row in rows if row["result"]})) or "not recorded"
    page = f"""<!doctype html><meta charset=utf-8><title>HA testbed run {run_dir.name} ({html.escape(variants)})</title>
<style>body{{font:14px sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}} td div{{font-size:12px}}</style>
<h1>HA testbed run {html.escape(run_dir.name)}</h1>
<p>Deployment variant: <b>{html.escape(variants)}</b>{VARIANT_NOTES.get(variants, "")}</p>
<p><b>{by.get('ok', 0)} of {len(rows)} operations as the seed documents</b> ({tally}).
An operation is ok only when every sub-check is ok or not applicable.
Switchover = fault to the first call set up after it and answered by the new active gateway.</p>
<table><tr><th>operation</th><th>seed</th><th>expected</th><th>verdict</th><th>switchover</th>
<th>transient calls</th><th>sub-checks</th><th>plot</th></tr>{''.join(table)}</table>
{''.join(f'<h3>{html.escape(row["operation"])}</h3><img src="{row["operation"]}/timeline.png">'
         for row in rows if (run_dir / row["operation"] / "timeline.png").exists())}
{phases_section(run_dir, rows)}
"""
    out = run_dir / "report.html"
    out.write_text(page)
    (run_dir / "results.json").write_text(json.dumps(
        [{**{k: v for k, v in row.items() if k != "result"}, **(row["result"] or {}),
          "status": row["status"]} for row in rows], indent=2, default=str))
    return out


RUN_META = "run.json"
VARIANT_NOTES = {
    "default": " (each Toolpack host runs one of the two database servers)",
    "external-db": " (the database servers on two hosts of their own: db-a main, db-b backup; "
                   "the MySQL operations target them)",
}


def allure_attach(scn_dir: Path) -> None:
    """The operation's verdict and timeline as Allure attachments of the running test
    (nothing without --alluredir: allure-pytest then records nothing)."""
    try:
        import allure
    except ImportError:
        return
    res = scn_dir / "result.json"
    if not res.exists():
        return
    result = json.loads(res.read_text())
    allure.attach(json.dumps({k: result.get(k) for k in ("operation", "status", "summary",
                                                         "verdict", "switchover_s")},
                             indent=2, default=str),
                  name="verdict", attachment_type=allure.attachment_type.JSON)
    png = timeline(scn_dir, result)
    if png:
        allure.attach.file(scn_dir / png, name="timeline", attachment_type=allure.attachment_type.PNG)


def write_run_meta(run_dir: Path, planned: list[dict], outcomes: dict, shard: str | None,
                   junit: str | None) -> None:
    """What `merge` needs of a run: its plan (with each operation's place in the whole
    matrix), pytest's outcomes, its shard; its JUnit file copied in as junit.xml."""
    if junit and Path(junit).exists() and Path(junit).resolve() != (run_dir / "junit.xml").resolve():
        shutil.copyfile(junit, run_dir / "junit.xml")
    (run_dir / RUN_META).write_text(json.dumps(
        {"planned": planned, "outcomes": outcomes, "shard": shard}, indent=2))


class MergeError(ValueError):
    pass


def merge(out: Path, dirs: list[Path]) -> Path:
    """One report of several run directories (the shards of a matrix run on several
    machines): every operation's directory copied into `out`, the plans and pytest's
    outcomes joined in the matrix's order, the JUnit files joined into one. An operation
    in two runs, or a directory that is no run, is an error (nothing half-merged)."""
    metas, where = [], {}
    if len(set(dirs)) != len(dirs):
        raise MergeError("a run directory given twice: " + ", ".join(
            sorted({str(d) for d in dirs if dirs.count(d) > 1})))
    for d in dirs:
        meta_file = d / RUN_META
        if not meta_file.exists():
            raise MergeError(f"{d}: no {RUN_META} (not a run directory of this harness)")
        meta = json.loads(meta_file.read_text())
        for op in [p["operation"] for p in meta.get("planned", [])] + \
                [r.parent.name for r in d.glob("*/result.json")]:
            if where.get(op, d) != d:
                raise MergeError(f"operation {op} is in both {where[op]} and {d}")
            where[op] = d
        metas.append((d, meta))
    out.mkdir(parents=True, exist_ok=True)
    planned, outcomes, seen = [], {}, set()
    for d, meta in metas:
        for p in meta.get("planned", []):
            if p["operation"] not in seen:
                seen.add(p["operation"])
                planned.append(p)
        outcomes.update(meta.get("outcomes") or {})
        for res in d.glob("*/result.json"):
            shutil.copytree(res.parent, out / res.parent.name, dirs_exist_ok=True)
    planned.sort(key=lambda p: p.get("order", 0))
    _merge_junit([d / "junit.xml" for d, _ in metas if (d / "junit.xml").exists()],
                 out / "junit.xml")
    (out / RUN_META).write_text(json.dumps(
        {"planned": planned, "outcomes": outcomes, "shard": None,
         "merged_from": [str(d) for d in dirs], "shards": [m.get("shard") for _, m in metas]},
        indent=2))
    return write(out, planned, outcomes)


def _merge_junit(files: list[Path], out: Path) -> None:
    """Every <testsuite> of the files under one <testsuites>."""
    if not files:
        return
    root = ET.Element("testsuites")
    for f in files:
        top = ET.parse(f).getroot()
        for suite in ([top] if top.tag == "testsuite" else top.findall("testsuite")):
            suite.set("name", f"{suite.get('name', 'pytest')} ({f.parent.name})")
            root.append(suite)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, 0)) for s in root)))
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["merge"]:
        import argparse
        p = argparse.ArgumentParser(prog="python -m harness.report merge",
                                    description="one report of several run directories")
        p.add_argument("dirs", nargs="+", type=Path)
        p.add_argument("--out", type=Path, default=None,
                       help="the merged run directory (default runs/merged-<time>)")
        a = p.parse_args(argv[1:])
        out = a.out or Path("runs") / f"merged-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            print(merge(out.resolve(), [d.resolve() for d in a.dirs]))
        except MergeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    print(write(Path(argv[0] if argv else "runs/latest").resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

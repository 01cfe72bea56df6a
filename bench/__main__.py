"""``python -m bench``: generate data at scale, run the benchmarks, rewrite bench/BENCHMARKS.md."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

from bench import cases
from bench.harness import ROOT, machine
from bench.report import now_text, render


def _summary(results: dict) -> dict:
    s: dict = {}
    scales = results.get("scales", [])
    for scale in scales:  # the last (largest) scale that ran each benchmark wins
        n = f"{scale['events'] / 1e6:g}M"
        if "B2" in scale:
            b = scale["B2"]
            s["B2"] = {"text": f"{b['ours_eps']:,.0f} events/s, {b['ratio']:.2f}× the ceiling ({n})",
                       "met": "yes" if b["ratio"] <= 3 else "no"}
        if "B4" in scale:
            b = scale["B4"]
            p95 = max((q["p95_ms"] for q in b["queries"] if q["p95_ms"] is not None), default=None)
            errors = [q["query"] for q in b["queries"] if q["error"]]
            speed = {c["query"]: c["speedup"] for c in b["pandas"]}
            heavy = [f"{q} {speed[q]:.0f}×" if q in speed else f"{q} (no pandas twin)" for q in b["heaviest"]]
            met = p95 is not None and p95 <= 100 and all(speed.get(q, 0) >= 10 for q in b["heaviest"]) and not errors
            s["B4"] = {"text": f"worst p95 {p95:,.0f} ms ({n}); heaviest vs pandas: {', '.join(heavy)}"
                       + (f"; errors: {', '.join(errors)}" if errors else ""), "met": "yes" if met else "no"}
        if "B7" in scale:
            b = scale["B7"]
            s["B7"] = {"text": f"{b['ours_rows_per_s']:,.0f} rows/s, peak {b['ours_peak_mb']:,.0f} MB "
                               f"(pandas {b['pandas_rows_per_s']:,.0f} rows/s, {b['pandas_peak_mb']:,.0f} MB) ({n})",
                       "met": "yes" if b["ours_rows_per_s"] >= 200_000 and b["ours_peak_mb"] <= 500 else "no"}
        if "B8" in scale:
            b = scale["B8"]
            s["B8"] = {"text": f"{b['seconds']:.1f} s, peak {b['peak_mb']:,.0f} MB ({n})",
                       "met": "yes" if b["seconds"] <= 60 and b["peak_mb"] <= 4096 else "no"}
        if "B9" in scale:
            b = scale["B9"]
            s["B9"] = {"text": f"{b['db_bytes_per_event']:,.0f} B/event vs NDJSON "
                               f"{b['ndjson_bytes_per_event']:,.0f} B/event: {b['ratio']:.2f}", "met": "reported"}
        for key in ("B5", "B6"):
            if key in scale:
                s[key] = {"text": scale[key]["summary"] + f" ({n})", "met": scale[key]["met"]}
    for key in ("B1", "B3"):
        if key in results:
            s[key] = {"text": results[key]["summary"], "met": results[key]["met"]}
    return s


def _run_scale(scale: dict, wanted, *, db: str, data: Path, ndjson: Path, truth: dict, work: Path, args,
               reps: int, notes: list[str], save, new_store: bool = False) -> None:
    """The benchmarks of one scale on its store. A ``new_store`` (just built by B2) holds the events only: B8
    loads the SCIM trail and correlates it even when B8 is not asked for, so B4, B5/B6 and B9 measure the whole
    store (session 9 found a 1M run of B2, B4 and B9 measuring a store without SCIM requests)."""
    # B4 last: its pandas side holds the events, requests and correlation in this process (~12 GB at 5M), and
    # the pandas export of B7 (~16.5 GB in its own process) was killed for memory when it ran after B4.
    steps = {
        "B8": lambda: cases.b8_correlation(db, data, truth),
        "B7": lambda: cases.b7_export(db, truth["events"], work, reps),
        "B9": lambda: cases.b9_size(db, ndjson, truth["events"]),
        "B5": lambda: cases.b5_b6_dashboard(db),
        "B4": lambda: cases.b4_queries(db, args.query_runs),
    }
    for key, step in steps.items():
        completes_store = key == "B8" and new_store
        if not (wanted(key) or (key == "B5" and wanted("B6")) or completes_store):
            continue
        print(f"[bench] {key} at {scale['events']:,} events"
              + ("" if wanted(key) else " (loading the SCIM trail into the new store; not reported)"), file=sys.stderr)
        try:
            result = step()
        except AttributeError as exc:
            notes.append(f"{key} not run at {scale['events']:,}: {exc}")
            continue
        if key == "B5":
            scale.update({k: v for k, v in result.items() if wanted(k)})
        elif wanted(key):
            scale[key] = result
        save()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--events", default="1000000,5000000", help="comma-separated scales (events)")
    p.add_argument("--reps", type=int, default=3, help="alternating repetitions per comparison")
    p.add_argument("--reps-large", type=int, default=1, help="repetitions at scales above 1M events")
    p.add_argument("--query-runs", type=int, default=20, help="runs per named query (B4)")
    p.add_argument("--only", help="comma-separated subset, e.g. B2,B4")
    p.add_argument("--work", default=str(ROOT / "bench" / "out"), help="scratch folder for data and databases")
    p.add_argument("--smoke", action="store_true", help="tiny scale, 1 rep; report into --work, not the repo")
    p.add_argument("--b1-events", type=int, default=200_000, help="events the fake Graph server holds for B1")
    p.add_argument("--b3-pages", type=int, default=2000, help="pages of the throttled backfill (B3)")
    p.add_argument("--b3-scale", type=float, default=10.0, help="B3 time scale: budget and latency divided by this")
    p.add_argument("--reuse-data", action="store_true",
                   help="keep the generated data and store of an earlier run in --work (no regeneration)")
    p.add_argument("--merge-with", action="append", help="results.json of an earlier run to include in the report")
    p.add_argument("--report", help="write the report here instead of bench/BENCHMARKS.md")
    args = p.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    scales = [int(x) for x in args.events.split(",")]
    if args.smoke:
        scales, args.reps, args.query_runs = [3000], 1, 2
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    def wanted(key: str) -> bool:
        return only is None or key in only

    results: dict = {"date": now_text(), "machine": machine(), "scales": [], "notes": []}
    target = Path(args.report) if args.report else (work / "BENCHMARKS.md" if args.smoke
                                                      else ROOT / "bench" / "BENCHMARKS.md")

    def save(partial: dict | None = None) -> None:
        """Write results.json and the report after every benchmark, so a long run that is stopped keeps
        what it measured (``partial``: the scale being measured)."""
        snapshot = dict(results, scales=results["scales"] + ([partial] if partial else []))
        snapshot["summary"] = _summary(snapshot)
        (work / "results.json").write_text(json.dumps(snapshot, indent=2, default=str))
        target.write_text(render(snapshot))
    from simulator.bulk import write_bulk

    for events in scales:
        data = work / f"data-{events}"
        print(f"[bench] generating ~{events:,} events into {data}", file=sys.stderr)
        if args.reuse_data and (data / "bulk-truth.json").exists():
            truth = json.loads((data / "bulk-truth.json").read_text())
        else:
            (data / "ceiling-columns.txt").unlink(missing_ok=True)  # B2's ceiling schema of the old data
            truth = write_bulk(data, events)
        scale = {"events": truth["events"], "scim_requests": truth["scim_requests"]}
        ndjson = data / "events.ndjson"
        db = str(work / f"store-{events}.duckdb")
        reps = args.reps if events <= 1_100_000 else args.reps_large
        new_store = wanted("B2") or not Path(db).exists()
        if new_store:
            print(f"[bench] B2 files ingest at {events:,} events ({reps} rep(s))", file=sys.stderr)
            b2 = cases.b2_files_ingest(ndjson, truth["events"], work, reps if wanted("B2") else 1)
            db = cases.move_db(b2["db"], Path(db))
            if wanted("B2"):
                scale["B2"] = b2
            save(scale)
        _run_scale(scale, wanted, db=db, data=data, ndjson=ndjson, truth=truth, work=work, args=args, reps=reps,
                   notes=results["notes"], save=functools.partial(save, scale), new_store=new_store)
        results["scales"].append(scale)
    b1_events = 3000 if args.smoke else args.b1_events
    b3_pages, b3_scale = (20, 50.0) if args.smoke else (args.b3_pages, args.b3_scale)
    for key, fn in (("B1", lambda: cases.b1_graph(work, b1_events, args.reps)),
                    ("B3", lambda: cases.b3_backfill(work, b3_pages, b3_scale))):
        if wanted(key):
            print(f"[bench] {key}", file=sys.stderr)
            try:
                results[key] = fn()
                save()
            except AttributeError as exc:
                results["notes"].append(f"{key} not run: {exc}")
    if args.merge_with:  # earlier runs' results for scales/benchmarks this run did not measure
        for earlier_path in args.merge_with:
            earlier = json.loads(Path(earlier_path).read_text())
            by_events = {sc["events"]: sc for sc in results["scales"]}
            for sc in earlier.get("scales", []):
                mine = by_events.setdefault(sc["events"], {"events": sc["events"]})
                for k, v in sc.items():
                    mine.setdefault(k, v)
            results["scales"] = sorted(by_events.values(), key=lambda sc: sc["events"])
            for key in ("B1", "B3"):
                if key not in results and key in earlier:
                    results[key] = earlier[key]
            results["notes"] += [n for n in earlier.get("notes", []) if n not in results["notes"]]
            earlier_runs = earlier.get("runs", [])  # an earlier merged report: the runs it was made of
            results.setdefault("runs", []).append({"date": earlier.get("date"), "machine": earlier.get("machine"),
                                                   "merged_runs": len(earlier_runs)})
            results["runs"] += earlier_runs
    save()
    print(f"[bench] wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

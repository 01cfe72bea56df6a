"""`generate`: builds the story, runs both provisioning jobs, adds SCIM-only traffic, computes the truth."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from . import scim
from .audits import build_audits
from .clock import DAY, from_datetime
from .directory import build_directory
from .engine import JobRun, Record
from .ids import IdFactory
from .model import Simulation
from .story import add_alert_incidents, alert_story_other_client, build_story
from .truth import build_truth, directory_audits_truth, preflight_truth

DEFAULT_END = datetime(2026, 11, 1, tzinfo=timezone.utc)


def generate(seed: int = 7, users: int = 200, days: float = 14, end: datetime | None = None, *,
             alert_story: bool = False) -> Simulation:
    """A deterministic simulated tenant covering [end - days, end); same arguments, same output. ``alert_story``
    adds the alert rules' incidents (story.add_alert_incidents)."""
    if days <= 0:
        raise ValueError("days must be positive")
    end_t = from_datetime(end or DEFAULT_END)
    start = end_t - int(days * DAY)
    master = random.Random(seed)
    ids = IdFactory(random.Random(master.getrandbits(64)))
    story = build_story(random.Random(master.getrandbits(64)), ids, users, start, end_t)
    if alert_story:
        add_alert_incidents(story, start, end_t)
    source_system_id = ids.guid()
    out = Record()
    runs = []
    for app in story.apps:
        run = JobRun(random.Random(master.getrandbits(64)), ids, app, story.users, story.changes,
                     story.tenant_id, source_system_id, start, end_t, out)
        run.run()
        runs.append(run)
    extra_rng = random.Random(master.getrandbits(64))
    scim_only = []
    for app in story.apps:
        scim_only += scim.probes(extra_rng, ids, app, start, end_t)
    scim_only += scim.hris_client(extra_rng, ids, story.apps[0], runs[0].accounts, start, end_t)
    if alert_story:
        scim_only = alert_story_other_client(scim_only, start, end_t)
    out.events.sort(key=lambda e: (out.ticks[e["id"]], e["id"]))
    records = sorted(out.scim + scim_only, key=lambda r: (r["ts"], r["request_id"]))
    snapshots = sorted(out.snapshots, key=lambda s: (s["capturedAt"], s["servicePrincipalId"]))
    truth = build_truth(seed=seed, users=users, days=days, start=start, end=end_t, story=story, out=out,
                        records=records, scim_only=scim_only)
    # The directory audit log (issue 24), drawn last so that everything above is as it was without it.
    audits, audit_only = build_audits(random.Random(master.getrandbits(64)), ids, story, out.quarantine, start, end_t)
    truth["directory_audits"] = directory_audits_truth(audits, audit_only)
    # The directory preflight reads (issue 26): derived from the story without a random draw.
    directory = build_directory(story)
    truth["preflight"] = preflight_truth(story, directory)
    return Simulation(events=out.events, job_snapshots=snapshots, scim_records=records, truth=truth,
                      directory_audits=audits, directory=directory)

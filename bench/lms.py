"""Benchmark: the LMS loader against the real edfi-lms-ds-loader 1.2.2, same files, same server.

    flock /tmp/edfi-bench.lock .venv/bin/python bench/lms.py              # ~100,000 submissions
    flock /tmp/edfi-bench.lock .venv/bin/python bench/lms.py --students 300 --assignments 4

The Toolkit's loader needs Python 3.9 and its own pins; make its venv once:

    ~/.pyenv/versions/3.9.18/bin/python -m venv .venv-lms-peer
    .venv-lms-peer/bin/pip install edfi-lms-ds-loader==1.2.2 "pandas==1.3.5" "numpy<1.24"

(pandas 1.3.5: the loader pins SQLAlchemy 1.3, which newer pandas refuses.)

A Canvas-shaped extract of the sandbox district (users, sections, section
associations, assignments, submissions: what both loaders load) is written
once under ``bench/.cache``. Each side loads it into its own new database on
the PostgreSQL server (``EDFI_TEST_POSTGRES_URL``, default the local ``test``
server), in its own process, timed from start to exit; then the two stores'
tables are compared row by row on natural keys. Our loader on SQLite is timed
too. Each side runs ``--repeat`` times, interleaved; the fastest counts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / "bench" / ".cache"
PEER = ROOT / ".venv-lms-peer" / "bin" / "python"
PG_URL = os.environ.get(
    "EDFI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
RESOURCES = frozenset({"users", "sections", "section-associations", "assignments", "submissions"})

# table -> (columns compared, parent joins: fk column -> (parent table, parent id column))
TABLES: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, str]]]] = {
    "lmsuser": (
        (
            "sourcesystemidentifier", "sourcesystem", "userrole", "sisuseridentifier",
            "localuseridentifier", "name", "emailaddress", "sourcecreatedate",
            "sourcelastmodifieddate", "createdate", "lastmodifieddate", "deletedat",
        ),
        {},
    ),
    "lmssection": (
        (
            "sourcesystemidentifier", "sourcesystem", "sissectionidentifier", "title",
            "sectiondescription", "term", "lmssectionstatus", "createdate", "lastmodifieddate",
            "deletedat",
        ),
        {},
    ),
    "lmsuserlmssectionassociation": (
        (
            "sourcesystemidentifier", "sourcesystem", "enrollmentstatus", "createdate",
            "lastmodifieddate", "deletedat",
        ),
        {
            "lmssectionidentifier": ("lmssection", "lmssectionidentifier"),
            "lmsuseridentifier": ("lmsuser", "lmsuseridentifier"),
        },
    ),
    "assignment": (
        (
            "sourcesystemidentifier", "sourcesystem", "title", "assignmentcategory",
            "assignmentdescription", "startdatetime", "enddatetime", "duedatetime", "maxpoints",
            "createdate", "lastmodifieddate", "deletedat",
        ),
        {"lmssectionidentifier": ("lmssection", "lmssectionidentifier")},
    ),
    "assignmentsubmission": (
        (
            "sourcesystemidentifier", "sourcesystem", "submissionstatus", "submissiondatetime",
            "earnedpoints", "grade", "createdate", "lastmodifieddate", "deletedat",
        ),
        {
            "assignmentidentifier": ("assignment", "assignmentidentifier"),
            "lmsuseridentifier": ("lmsuser", "lmsuseridentifier"),
        },
    ),
    "assignmentsubmissiontype": (
        ("submissiontype", "deletedat"),
        {"assignmentidentifier": ("assignment", "assignmentidentifier")},
    ),
}  # fmt: skip


def ensure_extract(students: int, assignments: int) -> tuple[Path, dict[str, int]]:
    """Write the extract once; returns its folder and its rows per resource."""
    from sandbox.lms_csv import build_extract, write_day

    folder = CACHE / f"lms-{students}-{assignments}"
    extract = build_extract(
        students,
        seed=11,
        days=1,
        lmses=("Canvas",),
        assignments_per_section=assignments,
        resources=RESOURCES,
    )
    counts: dict[str, int] = {}
    for f in extract.days[0]:
        counts[f.resource] = counts.get(f.resource, 0) + len(f.rows)
    if not (folder / "users").is_dir():
        tmp = folder.with_name(folder.name + ".tmp")
        write_day(extract, 0, str(tmp))
        tmp.rename(folder)
    return folder, counts


def _admin() -> Any:
    import sqlalchemy as sa

    return sa.create_engine(sa.make_url(PG_URL), isolation_level="AUTOCOMMIT")


def new_database() -> Any:
    import sqlalchemy as sa

    name = f"lms_bench_{uuid.uuid4().hex[:8]}"
    with _admin().connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return sa.make_url(PG_URL).set(database=name)


def drop_database(url: Any) -> None:
    import sqlalchemy as sa

    with _admin().connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))


def run_ours(folder: Path, url: str) -> float:
    code = (
        "import sys; from edfi.lms import load_directory; "
        "r = load_directory(sys.argv[1], sys.argv[2]); "
        "assert r.parentless == 0, r.summary()"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(folder), url], check=True, cwd=ROOT)
    return time.perf_counter() - start


def run_toolkit(folder: Path, url: Any, timeout: float | None) -> float | None:
    """The Toolkit's time, or None when stopped at ``timeout`` seconds (see ``progress``)."""
    if not PEER.exists():
        raise SystemExit(f"{PEER} not found: make the Toolkit's venv first (see the docstring)")
    args = [
        str(PEER), "-m", "edfi_lms_ds_loader", "--csvpath", str(folder),
        "--engine", "postgresql", "--server", url.host or "127.0.0.1",
        "--port", str(url.port or 5432), "--dbname", url.database,
        "--username", url.username or "postgres", "--password", url.password or "unused",
        "--log-level", "WARNING",
    ]  # fmt: skip
    start = time.perf_counter()
    try:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - start


def progress(url: Any) -> list[float]:
    """Seconds from the first to each processed file, from ``ProcessedFiles.UploadDateTime``."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        times = [
            t
            for (t,) in conn.execute(
                sa.text("select uploaddatetime from lms.processedfiles order by uploaddatetime")
            )
        ]
    engine.dispose()
    return [(t - times[0]).total_seconds() for t in times]


def contents(url: Any, folder: Path) -> dict[str, set[tuple[Any, ...]]]:
    """Every compared table as a set of rows, foreign keys replaced by the parents' keys.

    Surrogate ids are the one thing normalized away (each row is keyed by its own and its
    parents' SourceSystemIdentifier); the tables this extract leaves empty, and
    ``LMSGrade`` (ours only), are compared by row count."""
    import sqlalchemy as sa

    # one snapshot: a store still loading is read as of one moment (see compare_partial)
    engine = sa.create_engine(url, isolation_level="REPEATABLE READ")
    out: dict[str, set[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table, (cols, parents) in TABLES.items():
            select = [f"t.{c}" for c in cols]
            joins = []
            for i, (fk, (ptable, pid)) in enumerate(parents.items()):
                select.append(f"p{i}.sourcesystemidentifier")
                joins.append(f"join lms.{ptable} p{i} on p{i}.{pid} = t.{fk}")
            sql = f"select {', '.join(select)} from lms.{table} t {' '.join(joins)}"
            out[table] = {tuple(r) for r in conn.execute(sa.text(sql))}
        # ProcessedFiles: the path relative to the extract (both record it under the same
        # folder; normalized in case one records it absolute), resource, rows; not the time.
        root = str(folder.resolve()).replace("\\", "/").rstrip("/") + "/"
        out["processedfiles"] = {
            (str(p).replace("\\", "/").removeprefix(root), r.lower(), n)
            for p, r, n in conn.execute(
                sa.text("select fullpath, resourcename, numberofrows from lms.processedfiles")
            )
        }
        # Row counts of every other table in the lms schema (staging tables excepted).
        for (name,) in conn.execute(
            sa.text(
                "select table_name from information_schema.tables where table_schema = 'lms' "
                "and table_name not like 'stg%' order by table_name"
            )
        ):
            if name not in out and name != "schemamigration":
                count = conn.execute(sa.text(f"select count(*) from lms.{name}")).scalar_one()
                out[name] = {("row", i) for i in range(count)}
    engine.dispose()
    return out


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def compare(a: dict[str, set[tuple[Any, ...]]], b: dict[str, set[tuple[Any, ...]]]) -> None:
    # The Toolkit soft-deletes submission types by source system: each section's assignments
    # file marks every other section's types deleted. Ours scopes them by section, so they
    # stay; compare them without DeletedAt and count those.
    t = "assignmentsubmissiontype"
    if t in a and t in b:
        theirs_deleted = sum(1 for r in b[t] if r[1] is not None)
        ours_deleted = sum(1 for r in a[t] if r[1] is not None)
        print(
            f"  {t}: {theirs_deleted} of {len(b[t])} soft-deleted by the Toolkit "
            f"(scoped by source system), {ours_deleted} by ours"
        )
        a[t] = {(r[0], r[2]) for r in a[t]}
        b[t] = {(r[0], r[2]) for r in b[t]}
    for table in sorted(a.keys() | b.keys()):
        mine, theirs = a.get(table, set()), b.get(table, set())
        same = mine == theirs
        print(f"  {table}: ours {len(mine)} rows, toolkit {len(theirs)} rows, "
              f"{'identical' if same else 'DIFFERENT'}")  # fmt: skip
        if not same:
            print("    only ours:", sorted(mine - theirs, key=str)[:3])
            print("    only toolkit:", sorted(theirs - mine, key=str)[:3])


RESOURCE_OF = {
    "lmsuser": "users",
    "lmssection": "sections",
    "lmsuserlmssectionassociation": "section-associations",
    "assignment": "assignments",
    "assignmentsubmissiontype": "assignments",
    "assignmentsubmission": "submissions",
}


def compare_partial(a: dict[str, set[tuple[Any, ...]]], b: dict[str, set[tuple[Any, ...]]]) -> None:
    """Ours (complete) against a Toolkit store stopped midway: the tables whose files it has
    all loaded compare whole; submissions compare for the assignments whose file it loaded
    (each file a full snapshot of its assignment, so those rows are final)."""
    per_resource: dict[str, int] = {}
    for _, resource, _ in a["processedfiles"]:
        per_resource[resource] = per_resource.get(resource, 0) + 1
    for _, resource, _ in b["processedfiles"]:
        per_resource[resource] -= 1
    complete = {r for r, left in per_resource.items() if left == 0}
    done = {
        path.split("/")[1].split("=", 1)[1]
        for path, resource, _ in b["processedfiles"]
        if resource == "submissions"
    }
    print(f"  Toolkit's files all loaded for: {', '.join(sorted(complete))}; "
          f"submissions of {len(done)} assignments")  # fmt: skip
    print(f"  processedfiles: the Toolkit's {len(b['processedfiles'])} all among ours: "
          f"{b['processedfiles'] <= a['processedfiles']}")  # fmt: skip
    keep: dict[str, set[tuple[Any, ...]]] = {}
    theirs: dict[str, set[tuple[Any, ...]]] = {}
    for table, resource in RESOURCE_OF.items():
        if resource in complete:
            keep[table], theirs[table] = a[table], b[table]
        elif table == "assignmentsubmission":
            width = len(TABLES[table][0])  # the assignment's key follows the columns
            keep[table] = {r for r in a[table] if r[width] in done}
            # the Toolkit records a file as processed after committing its rows, so a
            # snapshot may hold rows of the file in flight: leave those out as well
            theirs[table] = {r for r in b[table] if r[width] in done}
            print(f"  assignmentsubmission: {len(b[table]) - len(theirs[table])} Toolkit rows "
                  "of a file not yet recorded as processed left out")  # fmt: skip
    compare(keep, theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--assignments", type=int, default=14, help="per section")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--no-toolkit", action="store_true", help="time our loader only (no comparison)"
    )
    parser.add_argument(
        "--toolkit-timeout",
        type=float,
        default=None,
        help="stop the Toolkit after this many seconds and report how far it got",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("OURS_DB", "TOOLKIT_DB"),
        help="only compare two stores on the server (the Toolkit's may still be loading)",
    )
    parser.add_argument(
        "--toolkit-stop-at",
        default=None,
        metavar="HH:MM",
        help="stop the Toolkit at this UTC time of day (for a run that must end by then)",
    )
    args = parser.parse_args()
    folder, counts = ensure_extract(args.students, args.assignments)
    if args.compare:
        import sqlalchemy as sa

        mine, theirs = (sa.make_url(PG_URL).set(database=d) for d in args.compare)
        a, b = contents(mine, folder), contents(theirs, folder)
        print(f"{len(b['processedfiles'])} of the Toolkit's files loaded; {_load()}")
        compare_partial(a, b)
        return
    files = sum(1 for _ in folder.rglob("*.csv"))
    print(f"extract {folder}: {files} files, rows {counts}; {_load()}", flush=True)
    ours: list[float] = []
    toolkit: list[float] = []
    sqlite: list[float] = []
    compared = False
    for _ in range(args.repeat):
        mine, theirs = new_database(), new_database()
        try:
            ours.append(run_ours(folder, mine.render_as_string(hide_password=False)))
            print(f"ours (PostgreSQL, COPY): {ours[-1]:.1f} s, {_load()}", flush=True)
            db = CACHE / f"lms-bench-{uuid.uuid4().hex[:6]}.sqlite"
            try:
                sqlite.append(run_ours(folder, f"sqlite:///{db}"))
                print(f"ours (SQLite):           {sqlite[-1]:.1f} s, {_load()}", flush=True)
            finally:
                for p in db.parent.glob(db.name + "*"):
                    p.unlink()
            if args.no_toolkit:
                continue
            timeout = args.toolkit_timeout
            if args.toolkit_stop_at:
                now = datetime.now(UTC)
                hour, minute = map(int, args.toolkit_stop_at.split(":"))
                stop = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
                timeout = (stop - now).total_seconds() % 86400
            took = run_toolkit(folder, theirs, timeout)
            if took is None:
                done, mine_done = progress(theirs), progress(mine)
                n = len(done)
                print(
                    f"edfi-lms-ds-loader 1.2.2: stopped after {timeout:.0f} s, "
                    f"{n} of {files} files loaded ({done[-1] if done else 0:.0f} s from its "
                    f"first to its last); ours took {mine_done[n - 1] if n else 0:.0f} s "
                    f"for the same first {n} files; {_load()}",
                    flush=True,
                )
                compare_partial(contents(mine, folder), contents(theirs, folder))
                break
            toolkit.append(took)
            print(f"edfi-lms-ds-loader 1.2.2: {took:.1f} s, {_load()}", flush=True)
            if not compared:
                compare(contents(mine, folder), contents(theirs, folder))
                compared = True
        finally:
            drop_database(mine)
            drop_database(theirs)
    print(f"ours (PostgreSQL, COPY): {', '.join(f'{t:.1f}' for t in ours)} s")
    print(f"ours (SQLite):            {', '.join(f'{t:.1f}' for t in sqlite)} s")
    if toolkit:
        print(f"edfi-lms-ds-loader 1.2.2: {', '.join(f'{t:.1f}' for t in toolkit)} s")
        print(f"speed-up on PostgreSQL: {min(toolkit) / min(ours):.1f}x (fastest runs)")


if __name__ == "__main__":
    main()

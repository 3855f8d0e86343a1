"""``edfi-sandbox``: run the Ed-Fi ODS/API emulator from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time

import uvicorn

from .server import build_sandbox


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="edfi-sandbox", description="An Ed-Fi ODS/API 7.3 emulator with a synthetic district."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="generate (or reuse) a district and serve it")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument(
        "--students",
        type=int,
        default=1000,
        help="district size (0: a minimal template, the default descriptors and school years only)",
    )
    serve.add_argument(
        "--empty",
        action="store_true",
        help="leave out the minimal template (default descriptors and school years): "
        "with --students 0, a completely empty API",
    )
    serve.add_argument("--seed", type=int, default=1)
    serve.add_argument(
        "--years", default="", help="comma-separated school years for year-specific routing"
    )
    serve.add_argument("--tenants", default="", help="comma-separated tenant names")
    serve.add_argument(
        "--openapi",
        action="append",
        help="OpenAPI document to serve instead of the built-in DS 5.0 + lmsx documents "
        "(repeat for resources, then descriptors); 'compact': the built-in documents with "
        "only the resources the district fills",
    )
    serve.add_argument(
        "--db",
        help="SQLite file to keep the data in (reused when it already holds the same district)",
    )
    serve.add_argument(
        "--faults",
        help="e.g. error=0.05,throttle=0.02,retry_after=1,drop=0.01,latency_ms=30,token_ttl=5",
    )
    serve.add_argument("--client-secret", help="fixed client secret (default: random)")
    export = sub.add_parser(
        "export-xml", help="write a generated district as Ed-Fi interchange XML files"
    )
    export.add_argument("out", help="folder URL to write the Interchange-*.xml files to")
    export.add_argument("--students", type=int, default=1000)
    export.add_argument("--seed", type=int, default=1)
    export.add_argument("--gzip", action="store_true", help="write *.xml.gz")
    export.add_argument("--openapi", action="append", help="as for serve")
    args = parser.parse_args(argv)
    if args.command == "export-xml":
        _export_xml(args)
        return

    started = time.perf_counter()
    try:
        sandbox = build_sandbox(
            students=args.students,
            seed=args.seed,
            years=[int(y) for y in args.years.split(",") if y] or None,
            tenants=[t for t in args.tenants.split(",") if t] or None,
            db=args.db,
            openapi=args.openapi,
            faults=args.faults,
            client_secret=args.client_secret,
            template=not args.empty,
        )
    except ValueError as exc:
        parser.error(str(exc))
    generated = time.perf_counter() - started
    print(
        json.dumps(
            {
                "base_url": f"http://{args.host}:{args.port}",
                "client_id": sandbox.client_id,
                "client_secret": sandbox.client_secret,
                "ready_seconds": round(generated, 2),
            }
        ),
        flush=True,
    )
    config = uvicorn.Config(
        sandbox,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        # the app reads X-Forwarded-* itself (Sandbox.public_base): uvicorn's proxy
        # middleware would only add a call to every request
        proxy_headers=False,
    )
    uvicorn.Server(config).run()
    sys.exit(0)


def _export_xml(args: argparse.Namespace) -> None:
    import tempfile

    from .export_xml import export_xml
    from .server import DEFAULT_YEAR, load_documents, open_store

    model, _ = load_documents(args.openapi)
    with tempfile.TemporaryDirectory(prefix="edfi-export-") as tmp:
        store = open_store(
            model,
            f"{tmp}/district.sqlite",
            students=args.students,
            seed=args.seed,
            year=DEFAULT_YEAR,
        )
        written = export_xml(model, store.iter_records, args.out, compress=args.gzip)
        store.close()
    print(json.dumps({"out": args.out, "files": written}), flush=True)


if __name__ == "__main__":
    main()

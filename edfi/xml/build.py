"""Cut the compact interchange schema the project ships from the official DS 5.2 XSDs.

Run at build time only (``python -m edfi.xml.build ../shared/edfi-spec/xsd-ds5.2``):
the official files sit beside the project, never inside a user's install. The
output is one schema document -- ``Ed-Fi-Core.xsd`` with its documentation
stripped, plus the top-level element of every interchange -- so that one
``XMLSchema`` validates any interchange file and the mapper derives every
element type from the same bytes.

``python -m edfi.xml.build --check-extension FOLDER`` checks an extension's XSDs
instead (``TPDM-EXTENSION-*.xsd``, as the ODS serves them): the mapping of the
built-in schema plus the extension onto the built-in model (or ``--openapi``
documents) is derived, and every element or property that cannot be derived is
listed; the exit status is 1 when there is any. ``bulk_load`` refuses the same
extension at run time with the same list, so this is the check to run first.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

from lxml import etree

XS = "http://www.w3.org/2001/XMLSchema"
OUTPUT = Path(__file__).resolve().parents[1] / "data" / "xml-ds5.2.xsd.gz"
ATTRIBUTION = (
    " Ed-Fi Data Standard 5.2 bulk interchange schemas (Ed-Fi-Core.xsd and Interchange-*.xsd),"
    " documentation and annotations removed, interchanges merged into one document."
    " Source: Ed-Fi-Alliance-OSS/Ed-Fi-Data-Standard, Schemas/Bulk."
    " Copyright Ed-Fi Alliance, LLC; licensed under the Apache License, Version 2.0"
    " (https://www.apache.org/licenses/LICENSE-2.0). Modified by edfi-flows. "
)


def _parse(path: Path) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
    return etree.parse(str(path), parser).getroot()


def _strip(root: etree._Element) -> None:
    for ann in root.findall(f".//{{{XS}}}annotation"):
        parent = ann.getparent()
        if parent is not None:
            parent.remove(ann)
    for imp in root.findall(f"{{{XS}}}import"):
        root.remove(imp)  # SchemaAnnotation.xsd: only the stripped appinfo used it


def build(source: Path) -> bytes:
    """The compact schema document, as bytes."""
    core = _parse(source / "Ed-Fi-Core.xsd")
    _strip(core)
    for inc in core.findall(f"{{{XS}}}include"):
        core.remove(inc)
    interchanges = sorted(source.glob("Interchange-*.xsd"))
    if not interchanges:
        raise SystemExit(f"no Interchange-*.xsd files in {source}")
    for path in interchanges:
        doc = _parse(path)
        _strip(doc)
        for el in doc.findall(f"{{{XS}}}element"):
            core.append(el)
    core.insert(0, etree.Comment(ATTRIBUTION))
    for el in core.iter():
        if isinstance(el.tag, str):
            el.tail = None if el.tail is None or not el.tail.strip() else el.tail
            el.text = None if el.text is None or not el.text.strip() else el.text
    etree.indent(core, space=" ")
    return etree.tostring(core, xml_declaration=True, encoding="UTF-8")


def check_extension(urls: list[str], openapi: list[str] | None = None) -> list[str]:
    """The problems of an extension's mapping (empty: it maps exactly)."""
    from ..model import builtin_model, load_model_files
    from .mapping import derive_mapping
    from .xsd import schema_with_extensions

    model = load_model_files(*openapi) if openapi else builtin_model()
    return derive_mapping(schema_with_extensions(urls), model).problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "source", type=Path, nargs="?", help="folder of the official DS 5.2 bulk XSDs"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--check-extension",
        action="append",
        metavar="URL",
        help="check an extension's XSDs (folder or file) instead of building; repeatable",
    )
    parser.add_argument(
        "--openapi",
        action="append",
        metavar="FILE",
        help="with --check-extension: the target's OpenAPI documents (default: built-in)",
    )
    args = parser.parse_args(argv)
    if args.check_extension:
        problems = check_extension(args.check_extension, args.openapi)
        for p in problems:
            print(p)
        print(
            f"{len(problems)} mapping problem(s)" if problems else "the extension maps exactly",
            file=sys.stderr,
        )
        raise SystemExit(1 if problems else 0)
    if args.source is None:
        parser.error("give the folder of the official XSDs, or --check-extension")
    data = build(args.source)
    args.output.write_bytes(gzip.compress(data, mtime=0))
    print(f"{args.output}: {len(data):,} bytes of schema", file=sys.stderr)


if __name__ == "__main__":
    main()

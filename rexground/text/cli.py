"""``rexground parse``: finding sentences in, one JSON query per line out (in input order).

rexground parse "6 mm nodule in the RLL" "No pleural effusion"
rexground parse --jsonl findings.jsonl > queries.jsonl     # lines of {"text": ...}; thousands in one process
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rexground.errors import FindingTextError, InputFileError
from rexground.text.parser import parse_finding


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="finding sentences to parse")
    parser.add_argument(
        "--jsonl",
        type=Path,
        metavar="FILE",
        help='a file of JSON lines, each an object with a string field "text" (other fields are ignored)',
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help='for a bad line print {"line": n, "error": ...} in its place and go on (exit status 1 at the end)',
    )
    parser.add_argument(
        "--field",
        default="text",
        help='the JSON field holding the sentence in --jsonl lines (default "text")',
    )


def _line_text(path: Path, lineno: int, line: str, field: str) -> str:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"line {lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict) or field not in obj:
        raise InputFileError(path, f'line {lineno}: expected an object with a "{field}" field')
    value = obj[field]
    if not isinstance(value, str):
        raise InputFileError(
            path, f'line {lineno}: field "{field}" must be a string, got {type(value).__name__}'
        )
    return value


def _emit(text: str) -> None:
    sys.stdout.write(parse_finding(text).model_dump_json() + "\n")


def run(args: argparse.Namespace) -> int:
    if not args.texts and args.jsonl is None:
        raise FindingTextError("give finding sentences as arguments or a file with --jsonl FILE")
    failures = 0
    for text in args.texts:
        _emit(text)
    if args.jsonl is not None:
        path: Path = args.jsonl
        if not path.is_file():
            raise InputFileError(path, "no such file")
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    _emit(_line_text(path, lineno, line, args.field))
                except (InputFileError, FindingTextError) as exc:
                    if not args.keep_going:
                        if isinstance(exc, FindingTextError):
                            raise InputFileError(path, f"line {lineno}: {exc}") from None
                        raise
                    failures += 1
                    sys.stdout.write(json.dumps({"line": lineno, "error": str(exc)}) + "\n")
    sys.stdout.flush()
    return 1 if failures else 0

"""The command line: `python -m vissl_lite.convert` and the `vissl-lite-convert` console script."""

import argparse
import sys
from pathlib import Path

from .converter import NotVissl, convert, preview_command


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="vissl-lite-convert",
        description="Convert a VISSL config (a `config:` root) into a vissl_lite experiment and report what "
                    "was kept, translated, dropped or refused, and where the numbers differ.")
    parser.add_argument("inputs", nargs="+", help="VISSL YAML file(s); later ones overlay earlier ones, as "
                                                  "VISSL's +config/... overrides do")
    parser.add_argument("-o", "--output", required=True, type=Path, help="the vissl_lite experiment to write")
    parser.add_argument("--vissl-numbers", action="store_true",
                        help="write VISSL's values where its rules and vissl_lite's differ (explicit schedule "
                             "values, regrouped parameters) instead of vissl_lite's")
    args = parser.parse_args(argv)
    try:
        result = convert(args.inputs, vissl_numbers=args.vissl_numbers)
    except NotVissl as err:
        print(f"vissl-lite-convert: {err}", file=sys.stderr)
        return 2
    print(result.report.format(result.numbers))
    if result.text is None:
        print(f"\nnot converted: {len(result.report.lines['refused'])} refusal(s) above; nothing written",
              file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(result.text)
    print(f"\nwrote {args.output} (validated as vissl_lite composes it). Preview:\n  {preview_command(args.output)}")
    return 0


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()

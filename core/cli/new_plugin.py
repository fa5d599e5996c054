"""``corolla new-plugin NAME``: write a ready-to-install plugin distribution."""
from __future__ import annotations

import argparse

from corolla.testing.scaffold_templates import COMPONENTS

KINDS = tuple(COMPONENTS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the distribution's name (its package: the name with '_' for '-')")
    parser.add_argument("--kind", default=",".join(KINDS), metavar="KIND,...",
                        help=f"the components to give, one of each (default: all of {','.join(KINDS)})")
    parser.add_argument("--dir", default=".", help="where to make the NAME folder (default: here)")


def run(args: argparse.Namespace) -> int:
    from corolla.testing.scaffold import new_plugin

    kinds = [kind.strip() for kind in args.kind.split(",") if kind.strip()]
    target = new_plugin(args.name, args.dir, kinds)
    print(f"wrote {target}: {', '.join(sorted(str(p.relative_to(target)) for p in target.rglob('*') if p.is_file()))}")
    print(f"next:  pip install -e '{target}[test]'  &&  pytest {target / 'tests'}")
    print(f"train: corolla quickstart (once, for its data), then corolla train -c {target / 'example.yaml'}")
    return 0

"""Blocks of a docs page regenerated from a benchmark's JSON: ``<!-- TAG:NAME -->`` … ``<!-- /TAG -->``.

docs/performance.md holds blocks of several scripts, each under its own tag (``kdcore`` for
performance_summary.py, ``bench_vocab`` for bench_vocab.py), so that each script rewrites only its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable


def render(page: str, record: dict, blocks: dict[str, Callable[[dict], str]], tag: str, what: str) -> str:
    """``page`` with every ``tag`` block regenerated from ``record`` by ``blocks[NAME]``; a block of an
    unknown name, or a name of ``blocks`` with no block on the page, is a ValueError (``what`` names them)."""
    pattern = re.compile(rf"(<!-- {tag}:([a-z-]+) -->\n)(.*?)(<!-- /{tag} -->)", re.DOTALL)
    seen = set()

    def replace(match: re.Match) -> str:
        name = match.group(2)
        if name not in blocks:
            raise ValueError(f"docs/performance.md: unknown {what} {name!r}")
        seen.add(name)
        return match.group(1) + blocks[name](record) + match.group(4)

    text = pattern.sub(replace, page)
    missing = set(blocks) - seen
    if missing:
        raise ValueError(f"docs/performance.md has no {what} for {sorted(missing)}")
    return text

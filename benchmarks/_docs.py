"""Blocks of the docs that benchmark scripts generate from their runs files.

A block lies between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; the scripts rewrite it,
and the test suite checks that the committed docs equal what the committed runs files give.
The scripts print signed differences through ``rounded``, so that none reads "-0.0".
"""

import re


def replace_block(text, marker, content):
    """``text`` with the block ``marker`` replaced by ``content``."""
    # The block may be empty: the end marker then follows the start marker's line.
    pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- {marker}:start/end --> markers")
    return pattern.sub(lambda m: m.group(1) + content.rstrip("\n") + "\n" + m.group(2), text)


def rounded(number, decimals=0):
    """``number`` rounded for printing, with no "-0": a sign that rounding erased is noise."""
    # the format spec's "z" (PEP 682) does this from Python 3.11; requires-python allows 3.10
    return round(float(number), decimals) + 0.0


def write_docs(generated, root):
    """Write the files of ``{path: text}`` (a script's ``generated_docs``) and say so."""
    for path, text in generated.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(root)}")

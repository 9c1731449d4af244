"""Timings taken in rounds: every candidate once per round, in an order rotated from round to
round, and their ratios paired within each round.

This machine's speed drifts over minutes. A fixed order hands the drift to whatever runs
last; rotating the order spreads it over all, and a ratio of two runs of the same round
cancels what they share.
"""

import statistics


def rotated(names, round_):
    """``names`` started at a different one each round.

    >>> [rotated(["a", "b", "c"], r) for r in range(3)]
    [['a', 'b', 'c'], ['b', 'c', 'a'], ['c', 'a', 'b']]
    """
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


def paired_ratios(numerators, denominators):
    """Median and range over rounds of ``numerators[i] / denominators[i]``.

    >>> paired_ratios([2.0, 4.0, 3.0], [1.0, 4.0, 2.0])
    {'median': 1.5, 'range': [1.0, 2.0]}
    """
    ratios = sorted(n / d for n, d in zip(numerators, denominators))
    return {"median": statistics.median(ratios), "range": [ratios[0], ratios[-1]]}

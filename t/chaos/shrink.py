"""Shrinking a failing op list: the shortest list that still fails the same way.

`fails(ops)` replays a list on a fresh world and returns the Failure kind (or None).  First the
list is cut after the op that failed, then its shortest failing suffix (1, 2, 4, ... last ops)
is looked for, then delta debugging (ddmin) removes chunks while the kind
stays the same, until no chunk can go or the time budget is spent."""
import time


def shrink(ops, kind, fails, budget, log=print):
    deadline = time.monotonic() + budget
    tries = [0]

    def same(cand):
        if time.monotonic() >= deadline:
            return False
        tries[0] += 1
        k = fails(cand)
        log("chaos: shrink try %d: %d ops -> %s" % (tries[0], len(cand), k or "passes"))
        return k == kind

    best = list(ops)
    # The cause is usually close to the failing (last) op: try the shortest suffixes first.
    k = 1
    while k < len(best) and time.monotonic() < deadline:
        if same(best[-k:]):
            best = best[-k:]
            break
        k *= 2
    n = 2
    while len(best) >= 2 and time.monotonic() < deadline:
        size = max(1, len(best) // n)
        chunks = [best[i:i + size] for i in range(0, len(best), size)]
        reduced = False
        # Removing a chunk (trying the later ones first: the failing op is usually near the end).
        for i in reversed(range(len(chunks))):
            cand = [op for j, c in enumerate(chunks) if j != i for op in c]
            if cand and same(cand):
                best, n, reduced = cand, max(n - 1, 2), True
                break
        if not reduced:
            if size == 1:
                break
            n = min(len(best), n * 2)
    return best, tries[0], time.monotonic() >= deadline

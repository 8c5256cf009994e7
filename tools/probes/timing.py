"""The probes' one timer: the median of five timed groups of calls, after two warm calls."""
import time


def timed(fn, n=50):
    """Milliseconds a call of fn: the median over five groups of n // 5 calls, after two calls that warm up."""
    fn()
    fn()
    groups = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n // 5):
            fn()
        groups.append((time.perf_counter() - t) / (n // 5) * 1000)
    return sorted(groups)[2]

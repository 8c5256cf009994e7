"""Many runs: the shared planning step (planning.py) and table builder (tables.py), the executor of
worker processes (executor.py) and Ray tasks (ray_runner.py), and the experiments themselves:
compare.py (with verdicts.py), sweep.py, bench.py."""

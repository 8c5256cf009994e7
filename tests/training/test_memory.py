"""Memory available to a run (MemAvailable, cgroup v1/v2 limits) and the pre-flight decision."""

from __future__ import annotations

import pytest

from gru_lab.errors import MachineError
from gru_lab.training.memory import ESTIMATE_FACTOR, available_memory, check_fits

GB = 10**9


def fake_machine(tmp_path, mem_available_kib: int | None, cgroup: dict[str, str]):
    proc, group = tmp_path / "proc", tmp_path / "cgroup"
    proc.mkdir()
    group.mkdir()
    if mem_available_kib is not None:
        (proc / "meminfo").write_text(f"MemTotal: 99999999 kB\nMemAvailable: {mem_available_kib} kB\n")
    for name, text in cgroup.items():
        (group / name).parent.mkdir(parents=True, exist_ok=True)
        (group / name).write_text(text)
    return str(proc), str(group)


@pytest.mark.parametrize("meminfo,cgroup,expected", [
    (20_000_000, {}, (20_000_000 * 1024, "MemAvailable")),
    # v2: 8 GB limit, 7 GB used of which 2 GB is reclaimable page cache -> 3 GB of room, less than MemAvailable
    (20_000_000, {"memory.max": "8000000000\n", "memory.current": "7000000000\n",
                  "memory.stat": "anon 5000000000\ninactive_file 2000000000\n"}, (3 * GB, "cgroup limit 8 GB")),
    (20_000_000, {"memory.max": "max\n", "memory.current": "7000000000\n"}, (20_000_000 * 1024, "MemAvailable")),
    # v1, and v1's "no limit" (a huge number)
    (20_000_000, {"memory/memory.limit_in_bytes": "4000000000\n", "memory/memory.usage_in_bytes": "1000000000\n",
                  "memory/memory.stat": "total_inactive_file 500000000\n"}, (3_500_000_000, "cgroup limit 4 GB")),
    (20_000_000, {"memory/memory.limit_in_bytes": "9223372036854771712\n",
                  "memory/memory.usage_in_bytes": "1000000000\n"}, (20_000_000 * 1024, "MemAvailable")),
    (None, {"memory.max": "garbage", "memory.current": "1"}, None),
], ids=["meminfo", "cgroup-v2", "cgroup-v2-unlimited", "cgroup-v1", "cgroup-v1-unlimited", "unreadable"])
def test_available_memory(tmp_path, meminfo, cgroup, expected):
    assert available_memory(*fake_machine(tmp_path, meminfo, cgroup)) == expected


def test_check_fits_refuses_warns_or_passes():
    room = (10 * GB, "MemAvailable")
    with pytest.raises(MachineError, match=r"cannot fit in memory: needs ~1.4 TB, 10 GB available \(MemAvailable\)"):
        check_fits(int(1.4e12), room, "this run")
    # a run the estimate puts above the room, but within its factor, may still fit: a warning, not a refusal
    assert "may not fit" in check_fits(int(ESTIMATE_FACTOR * 10 * GB), room, "this run")
    assert "may not fit" in check_fits(6 * GB, room, "this run")  # below the room, but not by the factor
    assert check_fits(4 * GB, room, "this run") is None
    assert check_fits(10**15, None, "this run") is None  # nothing known about the machine: no judgement

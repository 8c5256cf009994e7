"""Write data/activity.csv: synthetic accelerometer recordings labelled with an activity, for
configs/activity_gru.yaml (data.name: sequences, long layout). Deterministic: the same file every run.

Each recording is one sequence of 3-axis acceleration (ax, ay, az, in g) sampled at 20 Hz for 1.5 to 4 s
(30 to 80 steps), from one of four activities:
- sit: gravity on az, a slow sway and sensor noise;
- walk: a step rhythm of 1.6-2.2 Hz, strongest on ay, with its harmonic on az;
- run: 2.2-2.8 Hz, about twice walking's amplitude;
- stairs: a rhythm of 1.4-1.9 Hz, with the body tilted (gravity shifted from az to ax) and a slow
  rise of az over the recording.
Every recording gets its own phase, amplitude and tilt, and sensor noise of 0.25 g, so no single step tells
the classes apart.

    python data/make_activity.py            # writes data/activity.csv next to this script
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

RATE = 20  # samples a second
ACTIVITIES = ("sit", "walk", "run", "stairs")
PER_ACTIVITY = 45


def recording(kind: str, rng: np.random.RandomState) -> np.ndarray:
    steps = rng.randint(30, 81)
    t = np.arange(steps) / RATE
    phase = rng.uniform(0, 2 * np.pi)
    tilt = rng.normal(0, 0.05)
    if kind == "sit":
        sway = 0.03 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + phase)
        ax, ay, az = tilt + sway, sway / 2, np.full(steps, 1.0)
    else:
        freq, amp = {"walk": ((1.6, 2.2), 0.35), "run": ((2.2, 2.8), 0.6), "stairs": ((1.4, 1.9), 0.35)}[kind]
        f = rng.uniform(*freq)
        a = amp * rng.uniform(0.8, 1.25)
        wave = np.sin(2 * np.pi * f * t + phase)
        ax = tilt + 0.3 * a * np.sin(2 * np.pi * f * t + phase + 1.0)
        ay = a * wave
        az = 1.0 + 0.5 * a * np.sin(4 * np.pi * f * t + 2 * phase)
        if kind == "stairs":
            lean = rng.uniform(0.05, 0.2)
            ax, az = ax + lean, az - lean / 2 + 0.15 * t / t[-1]
    noise = rng.normal(0, 0.25, (steps, 3))  # a cheap sensor strapped on loosely
    return np.stack([ax, ay, az], axis=1) + noise


def main() -> None:
    rng = np.random.RandomState(2026)
    kinds = [k for k in ACTIVITIES for _ in range(PER_ACTIVITY)]
    order = rng.permutation(len(kinds))  # recordings in no particular class order, as a logger would write them
    path = Path(__file__).with_name("activity.csv")
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["recording", "time", "ax", "ay", "az", "activity"])
        for n, i in enumerate(order):
            for step, (ax, ay, az) in enumerate(recording(kinds[i], rng)):
                out.writerow([f"r{n:03d}", f"{step / RATE:.2f}", f"{ax:.3f}", f"{ay:.3f}", f"{az:.3f}", kinds[i]])


if __name__ == "__main__":
    main()

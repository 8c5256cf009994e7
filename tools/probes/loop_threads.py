"""The compiled loops' forward and backward ops with 1 thread against all (2 here), at T=50 and the given units and
batches: does splitting a small batch's rows between the threads pay when each thread must read the whole
recurrent kernel every step? ms a call, median of 5 x 10.
Usage: python tools/probes/loop_threads.py [UNITS,... [BATCHES,... [T]]] (default 128,512 16,32,64,128 50)"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from gru_lab.rnn.compiled import load  # noqa: E402
from timing import timed  # noqa: E402  (tools/probes/timing.py: the script's folder is on sys.path)

lib = load()
rng = np.random.default_rng(0)
UNITS = [int(v) for v in (sys.argv[1] if len(sys.argv) > 1 else "128,512").split(",")]
BATCHES = [int(v) for v in (sys.argv[2] if len(sys.argv) > 2 else "16,32,64,128").split(",")]
T = int(sys.argv[3]) if len(sys.argv) > 3 else 50




def ops(cell, u, b, threads):
    g = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    proj = tf.constant(rng.standard_normal((T, b, g * u)).astype("float32"))
    h0 = tf.zeros((b, u))
    kernel = tf.constant((rng.standard_normal((u, g * u)) / np.sqrt(u)).astype("float32"))
    m = tf.zeros([0])
    d_hs = tf.constant(rng.standard_normal((T, b, u)).astype("float32"))
    if cell == "rnn":
        hs = lib.gru_lab_rnn_forward(proj, h0, kernel, m)
        return (lambda: lib.gru_lab_rnn_forward(proj, h0, kernel, m, threads=threads),
                lambda: lib.gru_lab_rnn_backward(d_hs, hs, kernel, m, threads=threads))
    if cell == "gru":
        rb = tf.zeros((g * u,))
        hs, gates, rn = lib.gru_lab_gru_forward(proj, h0, kernel, rb, m, save=True)
        return (lambda: lib.gru_lab_gru_forward(proj, h0, kernel, rb, m, save=True, threads=threads),
                lambda: lib.gru_lab_gru_backward(d_hs, hs, h0, gates, rn, kernel, m, threads=threads))
    c0 = tf.zeros((b, u))
    hs, c_last, gates, cells = lib.gru_lab_lstm_forward(proj, h0, c0, kernel, m, save=True)
    return (lambda: lib.gru_lab_lstm_forward(proj, h0, c0, kernel, m, save=True, threads=threads),
            lambda: lib.gru_lab_lstm_backward(d_hs, tf.zeros((b, u)), c0, gates, cells, kernel, m, threads=threads))


print(f"load before {os.getloadavg()[0]:.2f}")
for cell in ("rnn", "gru", "lstm"):
    for u in UNITS:
        for b in BATCHES:
            f1, b1 = ops(cell, u, b, 1)
            f2, b2 = ops(cell, u, b, 0)
            tf1, tf2, tb1, tb2 = timed(f1), timed(f2), timed(b1), timed(b2)
            print(f"{cell:4s} u={u:3d} b={b:3d}  forward 1 thread {tf1:6.2f} ms, all {tf2:6.2f} ms ({tf1 / tf2:4.2f}x)   "
                  f"backward 1 thread {tb1:6.2f} ms, all {tb2:6.2f} ms ({tb1 / tb2:4.2f}x)", flush=True)
print(f"load after {os.getloadavg()[0]:.2f}")

"""gru-lab measuring itself, not the user's experiments: the bench against plain Keras (bench.py), its
PyTorch peer (torch_peer.py), the GPU check (gpu_check.py), tune against KerasTuner (tune_peers.py), and the
one-job-a-process helper they share (workers.py). Rendering lives in report/bench.py and report/gpu_check.py."""

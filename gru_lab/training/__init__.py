"""Training one run: fit and evaluate with timing (fit.py), the device setup from the kernel plan
(device.py), tf.data input pipelines (pipeline.py), memory peaks (memory.py)."""

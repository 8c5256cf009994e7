"""Using a finished run: reading its folder (run.py), scoring new text and series (predict.py), and exporting its
model for plain Keras and TensorFlow Serving (export.py)."""

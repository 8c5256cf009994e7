"""Config -> model: the layer plan with exact parameter counts (plan.py), the kernel plan (kernels.py),
and the Keras model (build.py, which imports Keras). Import the submodules; this package imports nothing."""

"""The tests' shared helpers, one module per concern (tests import from the module):

- paths: the checkout, the shared data, the tiny hyperparameters file.
- backends: the backends, the once-only marker, gradients on the current backend.
- models: tiny models and random images.
- processes: every child process of a test (run_command, start_command, run_python, clusters).
- programs: a program's main run in this process, its refusals.
- run_directory: a finished run directory reloaded as a user would.
- data: the real CIFAR-10 arrays and image folders written from them.
- reference_nets: the PyTorch (pytorchcv) side of the conversion tests.
- served_weights: the weights entry the tests serve.

Fixtures live in conftest.py.
"""

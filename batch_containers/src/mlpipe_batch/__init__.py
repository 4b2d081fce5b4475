"""mlpipe's AWS Batch containers: GPU training (PyTorch DDP, one process to multi-node) and batch inference.

Entry points: `python -m mlpipe_batch.train` and `python -m mlpipe_batch.infer` (see docs/training.md).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"

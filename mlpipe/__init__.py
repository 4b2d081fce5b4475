"""mlpipe: parallel and distributed machine learning on AWS (EMR, Glue, Batch, Step Functions)."""

__version__ = "0.1.0"

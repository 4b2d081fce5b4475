"""One construct per concern: storage, network, EMR, Batch, Glue, pipeline, monitoring."""

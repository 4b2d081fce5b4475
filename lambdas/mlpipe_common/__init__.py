"""Code shared by mlpipe's Lambda functions: S3 URIs and atomic JSON writes, errors, settings, logging,
the execution-input schema and the workload's metric."""

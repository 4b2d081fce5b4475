"""The `mlpipe` command groups that work on a deployed mlpipe: `run`, `status`, `list`, `stop`, `redrive`
(pipeline executions) and `train` (Batch training jobs). Each module has `register(parser)`, listed in
mlpipe/cli.py's COMMANDS; the work is done by `mlpipe.client`."""

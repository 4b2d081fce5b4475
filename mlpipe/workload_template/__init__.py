"""The files `mlpipe workload init DIR` writes: a small working workload (mlpipe/commands/workload.py).

Each file here is written to the new folder under its own name less a `.tmpl` suffix. The workload's Python
files are stored as `*.py.tmpl` so that they are not modules of mlpipe: mypy, pytest and the packaging would
otherwise treat them as `mlpipe.workload_template.train` and so on, though they run as top-level modules of
the workload's code package (`import train`). tests/mlpipe/test_workload_init.py lints and formats what
`init` writes, so they stay as clean as mlpipe's own code. Only `workload.toml.tmpl` is a template: `{name}`
becomes the workload's name.
"""

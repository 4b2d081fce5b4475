"""`python -m mlpipe` runs the `mlpipe` command."""

from mlpipe.cli import main

raise SystemExit(main())

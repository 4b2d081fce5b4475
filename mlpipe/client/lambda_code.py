"""The pipeline Lambdas' own code, imported from `lambdas/` so the client validates the execution input
and derives the run id exactly as the Plan state does (no copy of the schema or of the rule).

The Lambda asset lives next to the `mlpipe` package in the repository (`lambdas/`, on no package path of
its own): it is put on sys.path the first time it is needed, as `mlpipe.local` does.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

LAMBDAS_DIR = Path(__file__).resolve().parents[2] / "lambdas"
SCHEMA_PATH = LAMBDAS_DIR / "mlpipe_common" / "execution_input.schema.json"


def module(name: str) -> ModuleType:
    """Import `name` (e.g. `mlpipe_common.execution_input`) from the Lambda asset."""
    if not SCHEMA_PATH.is_file():  # an installation without the repository: not the user's doing
        raise RuntimeError(
            f"the pipeline's Lambda code is not at {LAMBDAS_DIR}; install mlpipe from its repository"
        )
    if str(LAMBDAS_DIR) not in sys.path:
        sys.path.insert(0, str(LAMBDAS_DIR))
    return importlib.import_module(name)


@contextmanager
def function_environment(variables: Mapping[str, str], names: tuple[str, ...]) -> Iterator[None]:
    """Run Lambda code that reads its settings from os.environ with a function's environment.

    `names` are the variables that code reads: each is set to the function's value or emptied (the Lambda's
    readers treat empty as unset), and restored afterwards. The CLI is single-threaded.
    """
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: variables.get(name, "") for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

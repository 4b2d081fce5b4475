"""`getResolvedOptions`, as aws-glue-libs parses a job's arguments: the job-bookmark option (default
`job-bookmark-disable`), the run's ids and TempDir beside the options the script asks for, with `-` in names
read as `_` (argparse's dest)."""

from __future__ import annotations

import argparse
from typing import Any

from awsglue.job import Job


def getResolvedOptions(args: list[str], options: list[str], allow_abbrev: bool = False) -> dict[str, Any]:
    parser = argparse.ArgumentParser(allow_abbrev=allow_abbrev)
    parser.add_argument(Job.job_bookmark_options()[0], choices=Job.job_bookmark_options()[1:], required=False)
    for option in Job.id_params()[1:]:
        parser.add_argument(option, required=False)
    parser.add_argument("--TempDir", required=False)
    for option in options:
        parser.add_argument("--" + option, required=True)
    parsed, _ = parser.parse_known_args(args[1:])
    resolved = vars(parsed)
    if resolved.get("job_bookmark_option") is None:
        resolved["job_bookmark_option"] = Job.job_bookmark_options()[3]
    return resolved

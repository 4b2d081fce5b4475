"""Job: `init` starts a run (its bookmark option comes from getResolvedOptions' `job_bookmark_option`),
`commit` records what the run's bookmarked sources read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from awsglue import RUN, load_bookmarks, log_call, save_bookmarks


class Job:
    @classmethod
    def job_bookmark_options(cls) -> list[str]:
        return ["--job-bookmark-option", "job-bookmark-enable", "job-bookmark-pause", "job-bookmark-disable"]

    @classmethod
    def id_params(cls) -> list[str]:
        return ["--JOB_NAME", "--JOB_ID", "--JOB_RUN_ID", "--SECURITY_CONFIGURATION"]

    def __init__(self, glue_context_or_spark_session: Any) -> None:
        from awsglue.context import GlueContext

        if not isinstance(glue_context_or_spark_session, GlueContext):
            raise TypeError(f"cannot init Job instance given {type(glue_context_or_spark_session)}")
        self._initialized = False
        log_call("Job")

    def init(self, job_name: str, args: dict[str, Any] = {}) -> None:  # noqa: B006 (the library's signature)
        RUN.job_name = job_name
        RUN.bookmarks_enabled = args.get("job_bookmark_option") == "job-bookmark-enable"
        RUN.pending = {}
        self._initialized = True
        log_call("Job.init", job_name=job_name, job_bookmark_option=args.get("job_bookmark_option"))

    def isInitialized(self) -> bool:
        return self._initialized

    def commit(self) -> None:
        if not self._initialized:
            raise RuntimeError("commit before init")
        if RUN.bookmarks_enabled and RUN.job_name:
            bookmarks = load_bookmarks()
            job = bookmarks.setdefault(RUN.job_name, {})
            for ctx, objects in RUN.pending.items():
                job.setdefault(ctx, {}).update(objects)
            save_bookmarks(bookmarks)
        watched = os.environ.get("AWSGLUE_DOUBLE_WATCH")
        existing = (
            sorted(str(p.relative_to(watched)) for p in Path(watched).rglob("*") if p.is_file())
            if watched
            else []
        )
        log_call("Job.commit", existing=existing)

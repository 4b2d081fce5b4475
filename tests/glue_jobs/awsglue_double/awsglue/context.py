"""GlueContext and its `create_dynamic_frame.from_options` reader for S3 sources (local paths here)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from awsglue import RUN, load_bookmarks, log_call
from awsglue.dynamicframe import DynamicFrame


def _objects(paths: list[str], recurse: bool) -> dict[str, int]:
    """Every object under `paths` with its last-modified time; Spark's hidden files (`.`, `_`) left out."""
    found = {}
    for root in paths:
        base = Path(root.removeprefix("file://"))
        candidates = base.rglob("*") if recurse else base.glob("*")
        for path in candidates:
            if path.is_file() and not any(
                part.startswith((".", "_")) for part in path.relative_to(base).parts
            ):
                found[str(path)] = os.stat(path).st_mtime_ns
    return found


class DynamicFrameReader:
    def __init__(self, glue_context: GlueContext) -> None:
        self._glue_context = glue_context

    def from_options(
        self,
        connection_type: str,
        connection_options: dict[str, Any] = {},  # noqa: B006 (the library's signature)
        format: str | None = None,
        format_options: dict[str, Any] = {},  # noqa: B006
        transformation_ctx: str = "",
        push_down_predicate: str = "",
        **kwargs: Any,
    ) -> DynamicFrame:
        log_call("create_dynamic_frame.from_options", connection_type=connection_type,
                 connection_options=connection_options, format=format, format_options=format_options,
                 transformation_ctx=transformation_ctx)  # fmt: skip
        if connection_type != "s3" or format != "csv":
            raise ValueError(f"the double reads s3 csv sources only, not {connection_type} {format}")
        spark = self._glue_context.spark_session
        objects = _objects(connection_options["paths"], bool(connection_options.get("recurse")))
        if RUN.bookmarks_enabled and transformation_ctx:
            seen = load_bookmarks().get(RUN.job_name or "", {}).get(transformation_ctx, {})
            objects = {path: mtime for path, mtime in objects.items() if seen.get(path) != mtime}
            RUN.pending[transformation_ctx] = objects
        if not objects:  # Glue gives an empty frame without columns
            from pyspark.sql.types import StructType

            return DynamicFrame(
                spark.createDataFrame([], StructType([])), self._glue_context, transformation_ctx
            )
        quote = format_options.get("quoteChar", '"')
        reader = (
            spark.read.option("sep", format_options.get("separator", ","))
            .option("header", str(format_options.get("withHeader", False)).lower())
            .option("quote", "\u0000" if quote == -1 else quote)  # -1: no quoting
        )
        return DynamicFrame(reader.csv(sorted(objects)), self._glue_context, transformation_ctx)


class GlueContext:
    def __init__(self, sparkContext: Any = None, **options: Any) -> None:
        from pyspark.sql import SparkSession

        self.spark_session = SparkSession.builder.getOrCreate()
        self.sparkSession = self.spark_session
        self.create_dynamic_frame = DynamicFrameReader(self)
        log_call("GlueContext", options=options)

"""DynamicFrame, as far as mlpipe's Glue driver uses it: `toDF()`."""

from __future__ import annotations

from typing import Any


class DynamicFrame:
    def __init__(self, jdf: Any, glue_ctx: Any, name: str = "") -> None:
        self._df = jdf
        self.glue_ctx = glue_ctx
        self.name = name

    def toDF(self) -> Any:
        return self._df

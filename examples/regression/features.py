"""The regression workload's feature stage: pure DataFrame functions, no Python UDFs.

mlpipe's EMR driver (emr_steps/build_features.py for training, emr_steps/inference_features.py for new data)
calls `features` on the curated readings, splits the rows by a seeded hash of `reading_id`, standardizes
NUMERIC_FEATURES with the training split's statistics and writes the shards and the feature manifest.

From the curated reading (`reading_id`, `ts`, `site`, `building_type`, `floor_area`, `occupancy`,
`temperature_c`, `log_load`, `month`):

- `log_floor_area`: floor areas are log-normal (a few huge buildings); the load grows with the log;
- `hour_sin`, `hour_cos`: the time of day (UTC) on the unit circle, so 23:59 sits next to 00:00;
- `temperature_c`, `heating_degrees` (below 18 C) and `cooling_degrees` (above): a U-shaped effect as two
  slopes a linear model can use;
- `log_occupancy`: log1p of the people in the building;
- `building_type` and `site`: their index in the known vocabulary, 1-based; 0 for a value outside it (the
  clean stage quarantines those, so 0 never occurs in curated data).
"""

from __future__ import annotations

import math
from typing import Any

# Must equal clean.py's vocabularies (tests/examples checks): the index is the category's identity.
SITES = tuple(f"site-{i:02d}" for i in range(1, 13))
BUILDING_TYPES = ("residential", "office", "retail", "industrial")
BALANCE_POINT_C = 18.0  # the outdoor temperature needing neither heating nor cooling

VOCABULARIES: dict[str, tuple[str, ...]] = {"building_type": BUILDING_TYPES, "site": SITES}
CATEGORICAL_FEATURES: dict[str, int] = {name: len(v) + 1 for name, v in VOCABULARIES.items()}
NUMERIC_FEATURES: tuple[str, ...] = (
    "log_floor_area",
    "hour_sin",
    "hour_cos",
    "temperature_c",
    "heating_degrees",
    "cooling_degrees",
    "log_occupancy",
)


def features(records: Any) -> Any:
    """Every numeric feature (unstandardized) and every categorical index of each reading, with
    `reading_id` and `log_load` (when the readings have it). One row per reading, no shuffle."""
    from pyspark.sql import functions as F

    hour = F.hour("ts") + F.minute("ts") / 60.0 + F.second("ts") / 3600.0
    angle = hour * (2 * math.pi / 24.0)
    temperature = F.col("temperature_c").cast("double")
    numeric = {
        "log_floor_area": F.log(F.col("floor_area")),
        "hour_sin": F.sin(angle),
        "hour_cos": F.cos(angle),
        "temperature_c": temperature,
        "heating_degrees": F.greatest(F.lit(BALANCE_POINT_C) - temperature, F.lit(0.0)),
        "cooling_degrees": F.greatest(temperature - F.lit(BALANCE_POINT_C), F.lit(0.0)),
        "log_occupancy": F.log1p(F.col("occupancy").cast("double")),
    }
    categorical = []
    for name, vocabulary in VOCABULARIES.items():
        index = F.lit(0)
        for i, value in reversed(list(enumerate(vocabulary, start=1))):
            index = F.when(F.col(name) == value, F.lit(i)).otherwise(index)
        categorical.append(index.cast("int").alias(name))
    label = ["log_load"] if "log_load" in records.columns else []
    return records.select(
        "reading_id",
        *label,
        *(numeric[n].cast("double").alias(n) for n in NUMERIC_FEATURES),
        *categorical,
    )

"""The clickstream example's raw event: its fields, vocabularies and ranges, and the dirty rows the generator
writes. One source for the generator (generator.py) and the clean module (clean.py)."""

from __future__ import annotations

# Required fields of a raw event, in the order the generator writes them. `discount` is optional.
REQUIRED_FIELDS: tuple[str, ...] = (
    "event_id",
    "ts",
    "user_id",
    "item_id",
    "device",
    "country",
    "category",
    "price",
    "position",
    "label",
)
OPTIONAL_FIELDS: tuple[str, ...] = ("discount",)

DEVICES: tuple[str, ...] = ("mobile", "desktop", "tablet")
COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "SE", "PL", "BR", "IN", "JP")
CATEGORIES: tuple[str, ...] = (
    "books",
    "electronics",
    "fashion",
    "home",
    "garden",
    "toys",
    "sports",
    "beauty",
    "grocery",
    "auto",
    "music",
    "movies",
    "games",
    "health",
    "office",
    "pets",
    "baby",
    "jewelry",
    "tools",
    "travel",
)

# Inclusive valid ranges of the numeric fields.
PRICE_RANGE: tuple[float, float] = (0.0, 10_000.0)
POSITION_RANGE: tuple[int, int] = (1, 50)
DISCOUNT_RANGE: tuple[float, float] = (0.0, 0.9)
LABEL_VALUES: tuple[int, ...] = (0, 1)
# Timestamps outside this half-open interval are rejected as unparseable for the workload.
TS_RANGE: tuple[str, str] = ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z")

# Every kind of dirty row the generator writes; `duplicate` rows are removed, not quarantined.
DIRTY_KINDS: tuple[str, ...] = (
    "malformed_json",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "bad_timestamp",
    "unknown_category",
    "invalid_utf8",
    "duplicate",
)

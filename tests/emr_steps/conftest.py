"""The EMR step modules are top-level modules of emr_steps/ (shipped as a zip on --py-files)."""

from __future__ import annotations

import sys
from pathlib import Path

EMR_STEPS = Path(__file__).resolve().parents[2] / "emr_steps"
if str(EMR_STEPS) not in sys.path:
    sys.path.insert(0, str(EMR_STEPS))

"""China's daily PM2.5 categories (HJ 633-2012) and the validity of a 24-hour mean (GB 3095-2012): what scoring,
calibration and the published forecast all name a concentration by."""

from __future__ import annotations

import numpy as np

# Upper bounds of China's daily PM2.5 categories, µg/m³ (HJ 633-2012, IAQI 50/100/150/200/300), and the categories'
# names: one more name than bounds, for above the last.
BREAKPOINTS = (35, 75, 115, 150, 250)
CATEGORY_NAMES = ("excellent", "good", "lightly polluted", "moderately polluted", "heavily polluted",
                  "severely polluted")
EXCEEDANCES = (75, 150)
# A 24-hour mean counts only with at least 20 hourly readings (GB 3095-2012, data validity).
MIN_HOURS_OF_MEAN = 20


def category(values: np.ndarray) -> np.ndarray:
    """0 (excellent, ≤ 35 µg/m³) … 5 (severely polluted, > 250), each bound inclusive above."""
    return np.digitize(values, BREAKPOINTS, right=True)

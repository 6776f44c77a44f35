"""The clock every stage shares: the stations' time zone, the hours of a day, and the hours ahead that reports show."""

# China has kept UTC+8 without daylight saving since 1991, so every local hour exists exactly once.
TIMEZONE = "Asia/Shanghai"
HOURS_PER_DAY = 24
REPORTED_HORIZONS = (1, 3, 6, 12, 24)

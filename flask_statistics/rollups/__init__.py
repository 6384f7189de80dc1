"""Pre-aggregated figures for the dashboard.

Every batch the writer inserts also adds its requests to rollup rows, in the same
transaction: one row per 15-minute UTC bucket (every time zone's hours and days start
on one), per local day of the dashboard's time zone, and per local month and year
once they are over, at these grains (see :mod:`.tables`):

- ``CLASS``: status class and bot flag (the unfiltered dashboard);
- ``STATUS``: method, status code and bot flag (status and method filters);
- ``ROUTE`` and ``PATH``: route, path, method, status code and bot flag (path and route
  filters, the top paths). Paths beyond a bucket's cap are folded into one "other" row
  per route. Path rows also count their browser and platform pairs and referrers
  (the top lists of a path or route filter).
- ``AGENT``: browser, platform, method, status code and bot flag, with referrer counts
  (browser and platform filters, the browser and platform lists). Browsers beyond the
  cap fold into one row per platform.
- ``REFERRER``: the referrer counts, per method, status code and bot flag.

Counts and sums are exact; response times are kept in log-spaced histograms (1 %
relative error) and visitors in a HyperLogLog sketch that stays exact while small.
Writers hold one lock row while they write, so a rebuild of a period from the raw rows
never interleaves with a batch (see :mod:`.store`).
"""

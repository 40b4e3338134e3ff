"""Planning: from an inventory of workloads to a running, eval-driven routing mix.

A workload is a use case (민원 상담, credit review, …) with its data, latency, languages, quality
bar and monthly volume. The audit joins the classifier, the policy packs, the catalog, the
procurement scorecards and the stored eval results into one recommendation per workload, and
writes a routing file that `nuri serve` loads (docs/planning.md).

`settings` is imported by `nuri.config`, so it depends on pydantic alone; everything else here is
imported only by the planning commands and by the gateway when it routes a workload.
"""

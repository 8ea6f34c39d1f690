"""Partitions of the pipeline: one dynamic partition per raw shard.

The per-shard assets declare no backfill policy, on purpose: a backfill ("Materialize all…",
"Materialize selected", a GraphQL asset backfill) then runs each partition in its own run tagged
with `dagster/partition`. A policy (even `BackfillPolicy.multi_run(1)`) gives the runs a partition
*range* tag instead, and Dagster 1.13 attaches a partition to check results only under the single
partition tag: the shards' check results would be stored without a partition and the publication
gate would never see them pass.
"""

from dagster import DynamicPartitionsDefinition

raw_shards = DynamicPartitionsDefinition(name="raw_shards")

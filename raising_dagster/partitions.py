"""Partitions of the pipeline: one dynamic partition per raw shard."""

from dagster import DynamicPartitionsDefinition

raw_shards = DynamicPartitionsDefinition(name="raw_shards")

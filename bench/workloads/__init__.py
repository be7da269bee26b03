"""Standalone workload scripts; each runs under both flavors unchanged."""

"""Prefect flows: thin wrappers that sequence the core's steps as tasks."""

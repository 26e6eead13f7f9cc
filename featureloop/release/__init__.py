"""Releasing a version that passed the offline gate on live traffic: shadow, canary, decided by the
live comparison, promoted or rolled back (docs/releases.md)."""

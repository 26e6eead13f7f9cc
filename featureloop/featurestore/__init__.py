"""The feature store side: opening and loading the Feast repository, and our Feast plug-ins (the
point-in-time offline store and the materialisation engine)."""

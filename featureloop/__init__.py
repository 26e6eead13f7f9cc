"""featureloop."""

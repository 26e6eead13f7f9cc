"""The feature store side: opening and loading the Feast repository, materialisation, and our Feast
plug-ins (the point-in-time offline store and the materialisation engine with its SQLite and Redis
writers), with the one codec of Feast's online-store bytes that the engine and serving share."""

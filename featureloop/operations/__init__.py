"""Operations: the local stack (`make up/down/status`: its services and their supervisor), a Prefect
server for one batch job, and the scale-out profile's PostgreSQL."""

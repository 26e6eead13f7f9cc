"""Operations: the local stack (`make up/down/status`) and the scale-out profile's PostgreSQL."""

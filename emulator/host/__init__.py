"""The reference Toolpack host: service monitor, the four applications, the database."""

"""kexue.losses."""

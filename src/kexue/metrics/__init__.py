"""kexue.metrics."""

"""kexue.extraction."""

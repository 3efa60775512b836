"""kexue.train."""

"""kexue.adapters."""

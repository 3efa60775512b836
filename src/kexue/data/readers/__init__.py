"""kexue.data.readers."""

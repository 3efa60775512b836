"""kexue.nn."""

"""``python -m kexue.cli``: the ``kexue`` command, e.g. under ``torchrun --nproc_per_node 2 -m kexue.cli ...``."""

from kexue.cli.app import main

if __name__ == "__main__":
    main()

"""``python -m ketaplan.cli``: the same as the ``ketaplan`` command."""

from ketaplan.cli import main

main()

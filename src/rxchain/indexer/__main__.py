"""``python -m rxchain.indexer``: the same commands as ``rx index``."""

from rxchain.indexer.commands import main

main()

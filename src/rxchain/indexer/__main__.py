"""``python -m rxchain.indexer``: the same commands as ``rx index`` and ``rx console``."""

from rxchain.indexer.commands import main

main()

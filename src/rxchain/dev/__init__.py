"""Development and measurement tools: the local devnet, the demo lifecycle, ``rx bench`` and the gas report."""

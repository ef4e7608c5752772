"""The web side: the pharmacy dApp's server, the regulator's console server, and what they share."""

"""Talking to the chain: the registry client, the outbox, deployments and deploying, signers, and the
pipelined bulk driver.
"""

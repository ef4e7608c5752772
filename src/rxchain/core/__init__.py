"""Pure formats and rules: ids, claim signatures, roles, statuses, batches (Merkle), the prescription
document and the patient's QR payload. Nothing here talks to a node.
"""

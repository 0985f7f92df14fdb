"""Who is live and who owns what: member tokens, proofs and leases, placement, publisher-side routing, status."""

"""Fleets: one release over many gateways, a canary first and the rest in waves."""

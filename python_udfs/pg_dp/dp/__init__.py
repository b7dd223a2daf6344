"""Differential privacy proper: OpenDP mechanisms, the release of one measurement and the
budget ledger."""

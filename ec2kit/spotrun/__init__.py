"""Spot runs: run a script on a spot instance, bring every result home, survive interruptions."""

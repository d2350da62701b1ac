"""Paying for contributions: amounts, treasury, onboarding, manifests, outbox, anchoring."""

"""The client wrapper: a Flower Mod that signs replies, and the onboarding co-signer."""

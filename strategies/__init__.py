"""Server-side Strategy wrappers, one concern each, composable around any Flower strategy."""

"""The policy document, its loading, and the pure engine that judges calls against it."""

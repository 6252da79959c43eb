"""The Crosswalk REST API (/api/v1/): per-user tokens, read access to what the console shows, and
the console's admin actions. Thin DRF views over `console.access`, `console.selectors` and the
services; see docs/api.md."""

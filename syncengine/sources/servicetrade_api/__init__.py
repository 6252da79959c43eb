"""ServiceTrade's REST API as a source: the HTTP client, and the three ways documents come in.

- `client`: authentication (OAuth2 or the legacy session), `{"data": …}` envelopes, pages,
  backoff on 429 and 5xx, and every read and write Crosswalk uses.
- `sync`: webhooks (ids only, each entity re-fetched), polling with a stored cursor, and a
  resumable backfill, all handing whole list pages to `services.invoices_ingest`; subscriptions;
  write-back of the posting outcome.
- `fake`: a small ServiceTrade that follows the documented contract, for tests and the demo.

What is documented, and what is not, is in docs/connectors/servicetrade.md.
"""

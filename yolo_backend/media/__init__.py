"""From a task's URL to upright pixels: ``fetcher`` (download, cache, decode), ``url_policy`` (which hosts, which
token), ``image_modes`` (odd pixel formats), ``decode_budget`` (memory a worker may decode into)."""

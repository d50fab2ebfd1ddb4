"""One module per dashboard page: a `page(...)` function that builds it from API data, and
a `register(app, client)` for the page's own callbacks."""

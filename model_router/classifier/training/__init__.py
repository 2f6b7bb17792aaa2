"""Training the query classifier: labeled data and fitting. Never imported by the server."""

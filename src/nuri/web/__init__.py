"""The operations console: server-rendered pages at /console, a client of the admin API."""

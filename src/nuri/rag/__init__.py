"""In-country retrieval that respects each document's grade.

Documents are read, chunked by structure and classified once at ingest (`ingest.py`), stored
with their grade (`store.py`) and searched with Korean morphemes, optional dense vectors and
reciprocal-rank fusion (`index.py`, `service.py`). A chat request naming `rag:<collection>`
(or carrying `nuri_rag`) gets its passages injected before the request is parsed
(`step.py`), so the one walk classifies them with the question and the most sensitive passage
decides where the request may go: there is no second policy path.
"""

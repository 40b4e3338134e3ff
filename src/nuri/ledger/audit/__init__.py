"""The audit trail: records (records.py) hash-chained and signed (chain.py, secrets.py), written by
group commit (writer.py) or through a local spool (spool.py, shipper.py), written for requests by
trail.py and read back by reports.py and export.py."""

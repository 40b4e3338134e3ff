"""Rate limits and budgets: admission and settlement (admission.py) over counters in memory
(counters.py), in the database (database.py) or in Redis (redis_counters.py, Lua in lua/, with
quota leases booked by the pure leasing.py)."""

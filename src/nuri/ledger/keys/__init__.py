"""Teams and API keys: key rows (rows.py), the epoch-leased cache (cache.py), refused credentials
(failures.py), authentication (auth.py) and key management (admin.py).

The key format is public to the gateway: `PREFIX` and `bearer` are re-exported here.
"""

from nuri.ledger.keys.rows import PREFIX, KeyInfo, NewKey, bearer, split_key

__all__ = ["PREFIX", "KeyInfo", "NewKey", "bearer", "split_key"]

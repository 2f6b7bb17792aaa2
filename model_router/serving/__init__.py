"""What keeps the router serving: the loader (memory budget, LRU), health, admission."""
